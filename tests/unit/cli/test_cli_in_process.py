"""The CLI run in process on an injected cluster: real verbs (click's CliRunner) through netsim.Cluster on
FakeKernel and MemoryStore (netsim.cli.front.InProcessFront), no root, nothing outside the process touched.
The controllers and scheduler run in process on each wait (netsim.daemonlink.NoDaemon), so an applied
Deployment has its Pods; no kubelet runs, so they stay Pending."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from netsim.cli.front import InProcessFront
from netsim.cli.main import cli
from netsim.kernel.fake import FakeKernel
from netsim.store import MemoryStore

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
"""


@pytest.fixture
def front(monkeypatch) -> InProcessFront:
    # Proof that nothing here needs root: the real root check would refuse.
    from netsim import preflight
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    f = InProcessFront(FakeKernel(), MemoryStore)
    yield f
    f.remove_all()


def run(front: InProcessFront, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), obj=front, input=input, catch_exceptions=False)


@pytest.fixture
def up(front: InProcessFront) -> InProcessFront:
    r = run(front, "up", "--name", "inproc", "-o", "json")
    assert r.exit_code == 0, r.output
    return front


def test_up_builds_in_the_injected_kernel_and_down_removes_it(front):
    r = run(front, "up", "--name", "inproc", "-o", "json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert [n["name"] for n in info["nodes"]] == ["node-1", "node-2", "node-3"]
    assert all(n["present"] for n in info["nodes"])
    assert "netsim-inproc.node.node-1" in front.kernel.ns
    r = run(front, "status", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["daemon"]["expected"] is False
    r = run(front, "status")
    assert r.exit_code == 0 and "no daemon (in process)" in r.stdout, r.output
    r = run(front, "down", "--name", "inproc")
    assert r.exit_code == 0 and "removed inproc: 5 namespace(s)" in r.output, r.output
    assert front.kernel.ns == {}


def test_apply_get_describe_scale_delete(up):
    r = run(up, "apply", "-f", "-", input=WEB)
    assert r.exit_code == 0, r.output
    assert "deployment/web created" in r.output and "service/web created" in r.output
    r = run(up, "get", "pods", "-l", "app=web", "-o", "name")
    assert r.exit_code == 0, r.output
    assert len(r.stdout.split()) == 2 and all(x.startswith("pod/web-") for x in r.stdout.split())
    r = run(up, "get", "svc", "web", "-o", "json")
    svc = json.loads(r.stdout)
    assert svc["spec"]["clusterIP"].startswith("10.96.")  # admitted: the allocator gave it an address
    r = run(up, "get", "deploy,svc")
    assert "deployment.apps/web" in r.stdout and "service/web" in r.stdout
    r = run(up, "describe", "deployment", "web")
    assert r.exit_code == 0 and "name: web" in r.stdout and "Events:" in r.stdout
    r = run(up, "scale", "deployment/web", "--replicas", "3")
    assert r.exit_code == 0 and "deployment/web scaled" in r.stdout, r.output
    assert len(run(up, "get", "pods", "-l", "app=web", "-o", "name").stdout.split()) == 3
    r = run(up, "label", "svc", "web", "tier=front")
    assert r.exit_code == 0 and "service/web labeled" in r.stdout, r.output
    r = run(up, "delete", "svc", "web")
    assert r.exit_code == 0, r.output
    r = run(up, "get", "svc", "web")
    assert r.exit_code == 2 and r.stderr.strip() == 'netsim: service "web" not found in namespace default', r.stderr


def test_apply_refuses_bad_input_naming_file_object_and_field(up, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(WEB.replace("replicas: 2", "replicas: -1"))
    r = run(up, "apply", "-f", str(bad))
    assert r.exit_code == 2
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "bad.yaml" in line and "web" in line and "replicas" in line, line
    assert run(up, "get", "deploy", "-o", "name").stdout == ""  # all or nothing: the Service was not written


def test_verbs_name_what_is_missing(up):
    r = run(up, "scale", "deployment/nope", "--replicas", "1")
    assert r.exit_code == 2 and 'deployment "nope" not found in namespace default' in r.stderr
    r = run(up, "describe", "pod", "nope")
    assert r.exit_code == 2 and 'pod "nope" not found' in r.stderr
    r = run(up, "get", "pods", "--cluster", "other")
    assert r.exit_code == 2 and "no cluster named 'other'" in r.stderr
    r = run(up, "exec", "default/nope", "--", "true")
    assert r.exit_code == 2 and "no pod default/nope in cluster inproc" in r.stderr


def test_probe_and_proxy_rules_run_on_the_fake_kernel(up):
    run(up, "apply", "-f", "-", input=WEB)
    # No pod has an address (no kubelet): the probe finds no source, which is said in one line.
    r = run(up, "probe", "--from", "default/nope", "--to", "svc/default/web")
    assert r.exit_code == 2 and "no running pod default/nope" in r.stderr, r.output
    up.kernel.run_results["iptables-save"] = __import__("subprocess").CompletedProcess(
        [], 0, "*nat\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n", "")
    r = run(up, "proxy", "rules", "--node", "node-1", "--table", "nat")
    assert r.exit_code == 0, r.output
    assert "-A PREROUTING -j KUBE-SERVICES" in r.stdout


SCENARIO = """\
apiVersion: netsim/v1alpha1
kind: Scenario
metadata: {name: inproc}
cluster: {nodes: 2}
manifests:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 1
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: web}]}
steps:
  - scale: {name: web, replicas: 3}
  - wait: {for: {kind: Deployment, name: web, replicas: 3}, timeout: 5s}
  - wait: {for: {kind: Node, name: node-1, condition: Ready}, timeout: 5s}
"""


def test_run_builds_each_scenario_through_the_injected_front(front, tmp_path):
    sc = tmp_path / "inproc.yaml"
    sc.write_text(SCENARIO)
    r = run(front, "run", str(sc), "-o", "json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert [s["status"] for s in report["steps"]] == ["pass", "pass", "pass"]
    assert report["build"]["status"] == "pass"
    assert front.known() == [] and front.kernel.ns == {}  # torn down, in the injected kernel


def test_more_verbs_in_process(up, tmp_path):
    assert run(up, "apply", "-f", "-", input=WEB).exit_code == 0
    r = run(up, "wait", "deployment/web", "--for=jsonpath={.status.replicas}=2", "--timeout", "5s")
    assert r.exit_code == 0 and "deployment.apps/web condition met" in r.stdout, r.output
    r = run(up, "rollout", "history", "deployment/web")
    assert r.exit_code == 0 and r.stdout.splitlines()[-1].split() == ["1", "<none>"], r.output
    r = run(up, "set", "image", "deployment/web", "web=web:2")
    assert r.exit_code == 0 and "deployment.apps/web image updated" in r.stdout, r.output
    r = run(up, "events", "-o", "json", "--for", "node/node-1")
    assert r.exit_code == 0 and isinstance(json.loads(r.stdout), list), r.output
    r = run(up, "logs", "nope")
    assert r.exit_code == 2 and "no logs for pod default/nope" in r.stderr
    r = run(up, "kubeconfig")
    assert r.exit_code == 2 and "has no API endpoint" in r.stderr
    r = run(up, "node", "fail", "node-1")
    assert r.exit_code == 0 and "node/node-1 failed" in r.stdout, r.output
    node = json.loads(run(up, "get", "node", "node-1", "-o", "json").stdout)
    assert node["metadata"]["annotations"]  # the failure is asked for through the Node, as with a daemon
    r = run(up, "delete", "pods", "-l", "app=web")
    assert r.exit_code == 0 and r.stdout.count("deleted") == 2, r.output
    dot = tmp_path / "t.dot"
    r = run(up, "draw", "-o", str(dot))
    assert r.exit_code == 0 and "3 node(s)" in r.stdout and dot.read_text().startswith(("digraph", "graph")), r.output
    r = run(up, "explain", "node/node-1", "svc/default/web:80", "--no-probe")
    assert r.exit_code == 0 and "svc/default/web:80 ->" in r.stdout, r.output
