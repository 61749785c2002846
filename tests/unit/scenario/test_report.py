"""Reports: JSON carries observed data, JUnit is well-formed and shaped like the common schema, text reads."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET

from netsim.scenario.api import FakeCluster
from netsim.scenario.format import load_scenario_text
from netsim.scenario.report import to_json, to_json_text, to_junit, to_rich_table, to_text
from netsim.scenario.runner import Runner

STEPS = """
- probe: {from: default/client, to: svc/default/web, port: 80, expect: allow}
- probe: {from: default/client, to: default/a, port: 80, expect: allow}
- reachability:
    expect: |
      -          default/a  default/client
      default/a  .          .
- dns: {from: default/client, name: web.default.svc.cluster.local, expect: {rcode: NOERROR}}
- spread: {from: default/client, to: svc/default/web, port: 80, count: 20, expect: {endpoints: 2, uniform: true}}
- scale: {name: web, replicas: 2}
- wait: 1ms
"""


def run_example():
    text = ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: report-demo}\n"
            "description: a <mixed> & 'quoted' run\nsteps:\n" + textwrap.indent(STEPS.strip(), "  ") + "\n")
    sc = load_scenario_text(text, "demo.yaml")
    api = FakeCluster(pods=["default/client", "default/a", "default/web-1", "default/web-2"],
                      services={"default/web": ["default/web-1", "default/web-2"]},
                      deny=[("default/client", "default/a", 80)],
                      scripted={"dns_lookup": RuntimeError("dns <boom> & friends"),
                                "scale": RuntimeError("no such deployment")})
    return Runner(api).run(sc)


def test_json_report_contains_observed_data():
    result = run_example()
    doc = json.loads(to_json_text(result))
    assert doc["kind"] == "ScenarioReport" and doc["scenario"] == "report-demo" and doc["passed"] is False
    assert doc["summary"] == {"pass": 3, "fail": 1, "error": 2, "skipped": 1}
    assert doc["cluster"]["metadata"]["name"] == "report-demo"
    assert set(doc) >= {"scenario", "cluster", "started", "duration", "passed", "steps", "build", "teardown"}
    first, blocked, reach, dns, spread, scale, wait = doc["steps"]
    assert first["type"] == "probe" and first["index"] == 0 and first["status"] == "pass"
    assert first["spec"] == {"probe": {"from": "default/client", "to": "svc/default/web", "port": 80,
                                       "expect": "allow"}}
    raw = first["observed"]["results"][0]
    assert {"from", "to", "target", "port", "protocol", "connected", "servedBy", "clientIP", "ms",
            "outcome"} <= set(raw)
    assert blocked["status"] == "fail" and blocked["failures"][0]["expected"] == "allow"
    assert blocked["failures"][0]["observed"][0]["outcome"] == "timeout"
    assert blocked["observed"]["explanations"][0]["reason"].endswith("denied by fake policy")
    assert reach["observed"]["matrix"]["TCP/80"].startswith("-")
    assert dns["status"] == "error" and "dns <boom>" in dns["error"]
    assert spread["observed"]["counts"] == {"default/web-1": 10, "default/web-2": 10}
    assert spread["observed"]["chiSquare"]["pValue"] == 1.0
    assert scale["status"] == "error" and wait["status"] == "skipped"
    assert isinstance(first["durationMs"], float)
    assert to_json(result)["aborted"].startswith("steps[5] (scale) errored")


def test_junit_is_well_formed_and_shaped():
    result = run_example()
    xml_text = to_junit(result)
    root = ET.fromstring(xml_text.encode())
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    assert suite.get("name") == "report-demo"
    assert int(suite.get("tests")) == len(cases) == 8  # build + 7 steps
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "2", "1")
    assert float(suite.get("time")) >= 0 and suite.get("timestamp")
    for case in cases:
        assert set(case.attrib) == {"classname", "name", "time"}
        assert case.get("classname") == "netsim.scenario.report-demo"
        float(case.get("time"))
        children = {c.tag for c in case}
        assert children <= {"failure", "error", "skipped", "system-out"}
    assert [c.tag for c in suite][0] == "properties" and [c.tag for c in suite][-2:] == ["system-out", "system-err"]
    failed = cases[2]
    assert failed.get("name").startswith("steps[1] probe default/client -> default/a:80/TCP")
    failure = failed.find("failure")
    assert failure.get("type") == "ExpectationFailed" and "expected allow" in failure.get("message")
    assert "expected: \"allow\"" in failure.text and "observed: [" in failure.text
    assert json.loads(failed.find("system-out").text)["attempts"] == 1
    assert cases[4].find("error").get("message").startswith("RuntimeError: dns <boom> & friends")
    assert cases[7].find("skipped") is not None
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["cluster"] == "report-demo" and props["plugin"] == "flannel/vxlan"


def test_text_report():
    text = to_text(run_example())
    lines = text.splitlines()
    assert lines[0] == "scenario report-demo (demo.yaml)"
    assert any(line.startswith("FAIL    [1] probe default/client -> default/a:80/TCP") for line in lines)
    assert any("why: default/client -> default/a:80/TCP: denied by fake policy" in line for line in lines)
    assert any(line.startswith("SKIP    [6] wait") for line in lines)
    assert lines[-1].startswith("FAILED: 3 passed, 1 failed, 2 errors, 1 skipped")


def test_console_progress_prints_each_step():
    from rich.console import Console

    from netsim.scenario.report import console_progress

    console = Console(record=True, width=200)
    text = ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: p}\nsteps:\n"
            "  - probe: {from: default/client, to: default/a, port: 80}\n  - wait: 1ms\n")
    api = FakeCluster(pods=["default/client", "default/a"], deny=[("default/client", "default/a", 80)])
    Runner(api, progress=console_progress(console)).run(load_scenario_text(text, "p.yaml"))
    out = console.export_text()
    assert "FAIL  [1/2] probe default/client -> default/a:80/TCP" in out
    assert "expected allow: 1 of 1 attempt(s) did not connect" in out and "PASS  [2/2] wait" in out


def test_rich_table_renders():
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(to_rich_table(run_example()))
    out = console.export_text()
    assert "scenario report-demo" in out and "FAIL" in out and "no such deployment" in out
