"""Every file in bad/ is an invalid manifest whose header says which error it must produce.

Header lines `# expect: <substring>` (one or more): each substring must occur in one rendered error, and
that error must name the file. Substrings name the field (`field spec.x: ...`) except for YAML syntax
errors, which name the line and column instead. The whole input is always rejected (SpecErrors raised,
nothing returned), even when only one document of several is bad.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netsim.model.errors import SpecErrors
from netsim.model.loader import load_documents

BAD = Path(__file__).parent / "bad"
CASES = sorted(BAD.glob("*.yaml"))


def _expectations(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            out.append(line.removeprefix("# expect:").strip())
    return out


def test_corpus_is_large_enough():
    assert len(CASES) >= 35


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_manifest_is_rejected(path: Path):
    expectations = _expectations(path)
    assert expectations, f"{path.name} has no '# expect:' header"
    with pytest.raises(SpecErrors) as info:
        load_documents([str(path)])
    rendered = [e.render() for e in info.value.errors]
    for expect in expectations:
        assert "field " in expect or "YAML syntax error" in expect or "YAML document refused" in expect, \
            f"{path.name}: expectation names no field"
        matching = [r for r in rendered if expect in r]
        assert matching, f"{path.name}: no error contains {expect!r}; got {rendered}"
        assert all(r.startswith(str(path)) for r in matching), matching


def test_all_bad_files_together_report_one_error_each():
    """Loading the whole directory collects the errors of every file in one SpecErrors."""
    with pytest.raises(SpecErrors) as info:
        load_documents([str(BAD)])
    files = {e.source.file for e in info.value.errors}
    assert files == {str(p) for p in CASES}
