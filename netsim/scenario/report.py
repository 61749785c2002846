"""Reports of a scenario run: JSON (the machine contract), JUnit XML (for CI) and text (for people).

JSON report schema (`to_json`), stable for outside tools:

    {
      "apiVersion": "netsim/v1alpha1", "kind": "ScenarioReport",
      "scenario": "quickstart",            # metadata.name
      "file": "quickstart.yaml", "description": "...",
      "cluster": {...},                    # the Cluster spec as built (ClusterSpec.to_dict())
      "started": "2026-11-27T03:30:00+00:00",   # ISO 8601, UTC
      "duration": 12.3,                    # seconds, build to teardown
      "passed": true,                      # every expectation held (exit code 0 iff true)
      "summary": {"pass": 3, "fail": 0, "error": 0, "skipped": 0},
      "aborted": null,                     # why later steps were skipped, if they were
      "build": <step>, "teardown": <step> | null,
      "steps": [<step>, ...]
    }
    <step> = {
      "index": 3,                          # position in the scenario's steps (steps[3]); -1 build, -2 teardown
      "type": "probe", "description": "probe default/client -> svc/default/web:80/TCP expect allow",
      "spec": {...},                       # the step as written
      "status": "pass" | "fail" | "error" | "skipped",
      "durationMs": 12.5,
      "observed": {...},                   # per type: probe/reachability/spread "results" (raw probe results,
                                           # docs/architecture.md shape + "outcome"), reachability "matrix",
                                           # "expectedMatrix", "mismatches"; spread "counts", "chiSquare";
                                           # trace "trace"; dns "dns"; exec "exitCode"/"stdout"/"stderr";
                                           # repeat "iterations"/"failed"/"failedIterations"/"during"
      "failures": [{"message": str, "expected": any, "observed": any}],
      "error": str | null
    }

JUnit XML follows the common (Jenkins/Surefire) shape: `<testsuites>` holding one `<testsuite>` per
scenario (name, tests, failures, errors, skipped, time, timestamp), a `<testcase>` per step (classname
`netsim.scenario.<name>`, name `steps[i] <description>`, time) with `<failure message type>`
(expected vs observed in the text), `<error>` or `<skipped>` children, and the observed JSON in
`<system-out>` for steps that did not pass.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from netsim.scenario.runner import ERROR, FAIL, PASS, SKIPPED, ProgressEvent, RunResult, StepResult

API_VERSION = "netsim/v1alpha1"


def step_to_dict(sr: StepResult) -> dict[str, Any]:
    return {"index": sr.index, "type": sr.type, "description": sr.description, "spec": sr.spec,
            "status": sr.status, "durationMs": sr.duration_ms, "observed": sr.observed,
            "failures": [f.to_dict() for f in sr.failures], "error": sr.error}


def to_json(result: RunResult) -> dict[str, Any]:
    """The report as a JSON-ready dict (schema in the module docstring)."""
    return {
        "apiVersion": API_VERSION, "kind": "ScenarioReport",
        "scenario": result.scenario, "file": result.file, "description": result.description,
        "cluster": result.cluster, "started": result.started, "duration": round(result.duration_s, 6),
        "passed": result.passed, "summary": result.counts, "aborted": result.aborted,
        "build": step_to_dict(result.build) if result.build else None,
        "teardown": step_to_dict(result.teardown) if result.teardown else None,
        "steps": [step_to_dict(s) for s in result.steps],
    }


def to_json_text(result: RunResult, *, indent: int | None = 2) -> str:
    return json.dumps(to_json(result), indent=indent, default=str, sort_keys=False)


def _failure_text(sr: StepResult) -> str:
    parts = []
    for f in sr.failures:
        parts.append(f"{f.message}\n  expected: {json.dumps(f.expected, default=str)}\n"
                     f"  observed: {json.dumps(f.observed, default=str)}")
    return "\n".join(parts)


def _testcase(suite: ET.Element, classname: str, sr: StepResult) -> None:
    name = f"steps[{sr.index}] {sr.description}" if sr.index >= 0 else sr.description
    tc = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{sr.duration_ms / 1000:.3f}")
    if sr.status == FAIL:
        el = ET.SubElement(tc, "failure", message=sr.failures[0].message if sr.failures else "failed",
                           type="ExpectationFailed")
        el.text = _failure_text(sr)
    elif sr.status == ERROR:
        el = ET.SubElement(tc, "error", message=sr.error or "error", type="StepError")
        el.text = sr.error or ""
    elif sr.status == SKIPPED:
        ET.SubElement(tc, "skipped", message=sr.error or "skipped")
    if sr.status in (FAIL, ERROR):
        out = ET.SubElement(tc, "system-out")
        out.text = json.dumps(sr.observed, indent=1, default=str)


def to_junit(result: RunResult) -> str:
    """JUnit XML text: one testsuite for the scenario, the build and each step a testcase."""
    cases = ([result.build] if result.build else []) + list(result.steps)
    if result.teardown and result.teardown.status == ERROR:
        cases.append(result.teardown)
    counts = {s: sum(1 for c in cases if c.status == s) for s in (FAIL, ERROR, SKIPPED)}
    root = ET.Element("testsuites", name="netsim", tests=str(len(cases)), failures=str(counts[FAIL]),
                      errors=str(counts[ERROR]), skipped=str(counts[SKIPPED]), time=f"{result.duration_s:.3f}")
    suite = ET.SubElement(root, "testsuite", name=result.scenario, tests=str(len(cases)),
                          failures=str(counts[FAIL]), errors=str(counts[ERROR]), skipped=str(counts[SKIPPED]),
                          time=f"{result.duration_s:.3f}", timestamp=result.started[:19],
                          hostname="netsim")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="file", value=result.file)
    ET.SubElement(props, "property", name="cluster", value=str(result.cluster.get("metadata", {}).get("name")))
    spec = result.cluster.get("spec", {})
    net = spec.get("network", {})
    ET.SubElement(props, "property", name="plugin", value=f"{net.get('plugin')}/{net.get('backend')}")
    for sr in cases:
        _testcase(suite, f"netsim.scenario.{result.scenario}", sr)
    # The stricter XSDs (windyroad JUnit.xsd) want both after the testcases, even when empty.
    ET.SubElement(suite, "system-out").text = f"aborted: {result.aborted}" if result.aborted else ""
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


_SYMBOL = {PASS: "PASS", FAIL: "FAIL", ERROR: "ERROR", SKIPPED: "SKIP"}


def to_text(result: RunResult, *, verbose: bool = False) -> str:
    """Compact lines: one per step, failures indented under it, a summary last."""
    lines = [f"scenario {result.scenario} ({result.file})"]
    rows = ([result.build] if result.build else []) + list(result.steps)
    for sr in rows:
        label = "build" if sr.index == -1 else f"[{sr.index}]"
        lines.append(f"{_SYMBOL[sr.status]:5} {label:>5} {sr.description}  ({sr.duration_ms:.0f} ms)")
        if sr.status == ERROR and sr.error:
            lines.append(f"            error: {sr.error}")
        for f in sr.failures:
            lines.append(f"            {f.message}")
        if verbose or sr.status == FAIL:
            for e in sr.observed.get("explanations", [])[:3]:
                lines.append("            why: " + e["reason"].replace("\n", "\n                 "))
            for m in sr.observed.get("mismatches", [])[:5]:
                if m.get("explain"):
                    lines.append("            why: " + m["explain"].replace("\n", "\n                 "))
        if (verbose or sr.status == FAIL) and sr.observed.get("matrix"):
            for key, table in sr.observed["matrix"].items():
                lines.append(f"            observed {key}:")
                lines.extend("              " + row for row in table.splitlines())
    if result.teardown and result.teardown.status == ERROR:
        lines.append(f"ERROR teardown: {result.teardown.error}")
    if result.aborted:
        lines.append(f"aborted: {result.aborted}")
    c = result.counts
    verdict = "PASSED" if result.passed else "FAILED"
    lines.append(f"{verdict}: {c[PASS]} passed, {c[FAIL]} failed, {c[ERROR]} errors, {c[SKIPPED]} skipped "
                 f"in {result.duration_s:.1f}s")
    return "\n".join(lines)


def console_progress(console: Any) -> Callable[[ProgressEvent], None]:
    """A Runner progress callback printing one line per phase and finished step to a rich Console."""
    styles = {PASS: "green", FAIL: "red", ERROR: "bold red", SKIPPED: "dim"}

    def show(event: ProgressEvent) -> None:
        if event.kind in ("build", "teardown"):
            console.print(f"[dim]{event.description}...[/]")
        elif event.kind == "step-end" and event.result is not None:
            sr = event.result
            console.print(f"[{styles[sr.status]}]{_SYMBOL[sr.status]:5}[/] [{sr.index + 1}/{event.total}] "
                          f"{sr.description} [dim]({sr.duration_ms:.0f} ms)[/]")
            for f in sr.failures:
                console.print(f"      {f.message}", markup=False, highlight=False)
            if sr.error:
                console.print(f"      error: {sr.error}", markup=False, highlight=False)
        elif event.kind == "done" and event.run is not None and event.run.build and not event.run.build.ok:
            console.print(f"[bold red]build failed:[/] {event.run.build.error}")

    return show


def to_rich_table(result: RunResult) -> Any:
    """A rich Table for the terminal (the CLI prints it); rich is a core dependency."""
    from rich.table import Table

    styles = {PASS: "green", FAIL: "red", ERROR: "bold red", SKIPPED: "dim"}
    table = Table(title=f"scenario {result.scenario}", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("status")
    table.add_column("step")
    table.add_column("ms", justify="right")
    table.add_column("details")
    for sr in ([result.build] if result.build else []) + list(result.steps):
        details = sr.error or "; ".join(f.message for f in sr.failures)
        table.add_row("build" if sr.index == -1 else str(sr.index),
                      f"[{styles[sr.status]}]{_SYMBOL[sr.status]}[/]", sr.description,
                      f"{sr.duration_ms:.0f}", details)
    return table
