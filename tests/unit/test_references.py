"""Every file the code and the docs point a reader at is in the repository: a path under one of the
repository's own top-level directories, cited in a module, a doc, a script or a scenario, exists (the code
once cited an ARCHITECTURE.md that was never there). Paths of upstream projects' files are cited with their
project (`pkg/proxy/...`, kubernetes/website `content/en/docs/...`); the few that look like ours are listed
below with where they live."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"(?<![\w./-])((?:docs|benchmarks|scripts|scenarios|tests|netsim|cni_plugins)/[\w./-]+\.(?:md|py|c|sh|yaml))")
UPSTREAM = {
    "docs/antctl.md": "Antrea's repository (docs/reference/tracing.md, section 1)",
    "docs/traceflow-guide.md": "Antrea's repository (docs/reference/tracing.md, section 1)",
    "docs/specification.md": "github.com/kubernetes/dns (netsim/dns/records.py)",
}
SOURCES = ("netsim", "cni_plugins", "docs", "benchmarks", "scripts", "scenarios", "tests")


def _texts():
    yield ROOT / "README.md"
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in (".py", ".md", ".sh", ".yaml") and path.is_file():
                yield path


def test_every_cited_repository_path_exists():
    missing = []
    for path in _texts():
        for cited in CITED.findall(path.read_text(errors="replace")):
            cited = cited.rstrip(".")
            if cited not in UPSTREAM and not (ROOT / cited).exists():
                missing.append(f"{path.relative_to(ROOT)}: {cited}")
    assert not missing, "cited but not in the repository: " + "; ".join(sorted(set(missing)))
    assert not list(ROOT.glob("ARCHITECTURE.md")) and "ARCHITECTURE.md" not in "".join(
        p.read_text(errors="replace") for p in _texts() if p.name != "test_references.py")
