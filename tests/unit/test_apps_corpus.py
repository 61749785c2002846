"""The real-application corpus (tests/data/apps) stays what its projects published: every app names its
source and licence, ships the licence text, and every manifest still has the sha256 its SOURCE.md records
(a test must never pass because a corpus file was edited). Every app loads as published, also into a
namespace of its own (`apply -n`), which the root test (tests/integration/apps/test_real_apps.py) runs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from netsim.model.loader import load_documents

APPS = Path(__file__).resolve().parents[1] / "data" / "apps"
DIRS = sorted(p for p in APPS.iterdir() if p.is_dir())
MANIFEST = (".yaml", ".yml", ".json")


def test_the_corpus_has_at_least_six_apps():
    assert len(DIRS) >= 6
    assert (APPS / "README.md").is_file()


@pytest.mark.parametrize("app", DIRS, ids=[d.name for d in DIRS])
def test_each_app_names_its_source_and_licence_and_is_unmodified(app: Path):
    source = (app / "SOURCE.md").read_text()
    assert re.search(r"^- Repository: https://github\.com/[\w.-]+/[\w.-]+$", source, re.M), source
    assert re.search(r"^- Commit: `[0-9a-f]{40}`$", source, re.M), source
    licence = re.search(r"^- Licence: (.+) \(full text: `([^`]+)`", source, re.M)
    assert licence and (app / licence.group(2)).is_file()
    recorded = dict((path, digest) for digest, path in re.findall(r"^- `([0-9a-f]{64})  (.+)`$", source, re.M))
    files = sorted(str(p.relative_to(app)) for p in app.rglob("*") if p.suffix in MANIFEST)
    assert files and sorted(recorded) == files
    for path, digest in recorded.items():
        assert hashlib.sha256((app / path).read_bytes()).hexdigest() == digest, f"{app.name}/{path} was changed"


@pytest.mark.parametrize("app", DIRS, ids=[d.name for d in DIRS])
def test_each_app_loads_as_published_into_its_own_namespace(app: Path):
    objs = load_documents([app], namespace=app.name)
    assert len(objs) >= 3
    assert {o.meta.namespace for o in objs if o.meta.namespace is not None} == {app.name}
