"""Runs every scenario of the library (scenarios/*.yaml) through `netsim run -o json`, one test per file.

A scenario opts out of CI with a header comment line `# ci: skip (<reason>)` before its first YAML key
(the CronJob one waits for a minute boundary, the large one is the benchmark, one documents a netsim bug).
Each run gets its own cluster name (`--name t<hex>`, so namespaces are `netsim-t...`) and is torn down in
a finaliser even when the run is killed. Also here: a deliberately failing scenario must exit 1 with
messages that say what was expected and what was seen, and the JUnit report must be valid XML.
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import NETSIM, run_netsim, unique_name

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[3]
LIBRARY = ROOT / "scenarios"
FAILING = Path(__file__).resolve().parent / "failing.yaml"
CI_SKIP = re.compile(r"^#\s*ci:\s*skip\b\s*(.*)$")
RUN_TIMEOUT = 180
# What every step type must report as observed data (beyond pass/fail).
OBSERVED_KEYS = {
    "probe": "results", "reachability": "results", "spread": "results", "dns": "dns", "exec": "exitCode",
    "trace": "trace", "repeat": "iterations", "apply": "objects", "delete": "objects", "scale": "replicas",
    "rollout": "rollout", "kill": "killed", "node": "node", "wait": "waitedMs", "load": "series",
}


def ci_skip_reason(path: Path) -> str | None:
    """The reason given on a `# ci: skip` line of the file's leading comment block, else None."""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return None
        m = CI_SKIP.match(stripped)
        if m:
            return m.group(1).strip(" ()") or "marked ci: skip"
    return None


def library_files() -> list[Path]:
    return sorted(LIBRARY.glob("*.yaml"))


def _params() -> list:
    out = []
    for f in library_files():
        reason = ci_skip_reason(f)
        marks = [pytest.mark.skip(reason=f"not for CI: {reason}")] if reason else []
        out.append(pytest.param(f, id=f.stem, marks=marks))
    return out


@pytest.fixture
def cluster_name():
    name = unique_name("t")
    yield name
    run_netsim("down", "--name", name, check=False, timeout=120)


def _run(path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NETSIM, "run", str(path), "--name", name, *extra], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, cwd=ROOT)


# ------------------------------------------------------------------------------------------ pure helpers


def test_ci_skip_convention(tmp_path):
    skipped = tmp_path / "a.yaml"
    skipped.write_text("# title\n#\n# ci: skip (takes a minute)\napiVersion: netsim/v1alpha1\n")
    assert ci_skip_reason(skipped) == "takes a minute"
    late = tmp_path / "b.yaml"  # only the leading comment block counts
    late.write_text("# title\napiVersion: netsim/v1alpha1\n# ci: skip (too late)\n")
    assert ci_skip_reason(late) is None


def test_library_is_documented():
    """Every scenario starts with a comment header and is listed in scenarios/README.md."""
    readme = (LIBRARY / "README.md").read_text(encoding="utf-8")
    for f in library_files():
        text = f.read_text(encoding="utf-8")
        assert text.startswith("#"), f"{f.name} has no header comment"
        assert f"]({f.name})" in readme or f"`{f.name}`" in readme, f"{f.name} is not listed in README.md"


def test_cluster_names_are_unique():
    from netsim.scenario.format import load_scenario
    names = {}
    for f in library_files():
        name = load_scenario(f).cluster.name
        assert name not in names, f"{f.name} and {names[name]} both build cluster {name}"
        names[name] = f.name


# ------------------------------------------------------------------------------------------ the library


@pytest.mark.parametrize("path", _params())
def test_scenario(path: Path, cluster_name: str, tmp_path: Path):
    proc = _run(path, cluster_name, "-o", "json", "--report", str(tmp_path))
    assert proc.returncode == 0, f"{path.name} exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    assert report["kind"] == "ScenarioReport" and report["passed"] is True
    assert report["build"]["status"] == "pass"
    assert report["summary"]["pass"] == len(report["steps"]) > 0
    for step in report["steps"]:
        where = f"{path.name} steps[{step['index']}] {step['description']}"
        assert step["status"] == "pass", where
        key = OBSERVED_KEYS[step["type"]]
        assert key in step["observed"], f"{where}: no observed {key!r} in {step['observed']}"
        if step["type"] in ("probe", "reachability", "spread"):
            results = step["observed"]["results"]
            assert results and all("connected" in r and "outcome" in r for r in results), where
    xml = ET.parse(tmp_path / f"{report['scenario']}.xml").getroot()
    suite = xml if xml.tag == "testsuite" else xml.find("testsuite")
    assert suite is not None and int(suite.get("failures")) == 0
    assert int(suite.get("tests")) == len(report["steps"]) + 1  # the build is a test case too


# ------------------------------------------------------------------------------------------ failing run


def test_failing_scenario_reports_what_went_wrong(cluster_name: str, tmp_path: Path):
    proc = _run(FAILING, cluster_name, "--report", str(tmp_path))
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    out = proc.stdout
    assert "FAILED: 1 passed, 2 failed" in out
    assert "expected deny: 1 of 1 attempt(s) connected" in out and "served by default/web" in out
    assert "stdout does not contain 'goodbye'" in out
    report = json.loads((tmp_path / "must-fail.json").read_text())
    assert report["passed"] is False
    denied = report["steps"][1]
    assert denied["status"] == "fail" and denied["observed"]["results"][0]["connected"] is True
    assert denied["failures"][0]["expected"] == "deny"
    assert report["steps"][2]["observed"]["stdout"].strip() == "hello"


def test_failing_scenario_junit_is_valid_xml(cluster_name: str):
    proc = _run(FAILING, cluster_name, "-o", "junit")
    assert proc.returncode == 1, proc.stderr
    root = ET.fromstring(proc.stdout)  # raises on malformed XML
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    assert root.tag in ("testsuites", "testsuite") and len(suites) == 1
    suite = suites[0]
    assert suite.get("name") == "must-fail"
    assert int(suite.get("tests")) == 4 and int(suite.get("failures")) == 2  # build + 3 steps
    cases = suite.findall("testcase")
    assert len(cases) == 4 and cases[0].get("name").startswith("build cluster")
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 2
    assert all(c.find("failure").get("message") for c in failed)
    assert "steps[1]" in failed[0].get("name")
