"""The README tour's policy commands on a real cluster: `explain` through a Service with a named
targetPort, `verify` from nodes and external hosts, and `verify --diff` that never leaves the live
cluster changed (also when the command is killed)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from netsim import lifecycle
from netsim.api import Cluster
from netsim.controlplane import whatif
from netsim.controlplane.events import list_events
from tests.conftest import NETSIM, run_netsim, unique_name

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = REPO / "scenarios"


@pytest.fixture(scope="module")
def tour(kernel):
    """scenarios/clusters/three-node-calico.yaml + manifests/web.yaml + deny-all.yaml, as the tour does."""
    name = unique_name("vt")
    c = None
    try:
        c = Cluster.up(SCENARIOS / "clusters" / "three-node-calico.yaml", name=name, timeout=60)
        c.apply([str(SCENARIOS / "manifests" / "web.yaml"), str(SCENARIOS / "manifests" / "deny-all.yaml")],
                timeout=90)
        yield c
    finally:
        if c is not None:
            c.close()
        lifecycle.down(kernel, name)


def test_explain_service_with_named_target_port(tour: Cluster) -> None:
    """web's Service has `targetPort: http`: explain resolves it per endpoint (it crashed with a TypeError)."""
    proc = run_netsim("explain", "default/intruder", "svc/default/web:80", "--cluster", tour.name, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "svc/default/web:80 -> 3 endpoint(s)" in proc.stdout
    assert proc.stdout.count(":8080/TCP: denied") == 3, proc.stdout
    assert "isolated by default/deny-all" in proc.stdout
    assert "kernel: timeout" in proc.stdout


ALLOW_EXTERNAL = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": {"name": "allow-external", "namespace": "default"},
                  "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                           "ingress": [{"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}]}}


@pytest.fixture
def allow_external(tour: Cluster):
    tour.apply([ALLOW_EXTERNAL])
    try:
        yield tour
    finally:
        tour.delete("NetworkPolicy", "allow-external", "default")


def test_verify_from_external_host_judges_the_address_after_nodeport_masquerade(allow_external: Cluster) -> None:
    """An ipBlock for the external client's subnet: through a NodePort (externalTrafficPolicy Cluster) it
    admits the client only at an endpoint on the node it entered (policy runs before the masquerade);
    a remote endpoint sees the ingress node's VXLAN tunnel address and drops it. verify probes it (it
    reported "agree on all 0 probes") and checks the address each pod saw."""
    c = allow_external
    report = c.verify(frm="host/client", timeout=1.5)  # generous: an answer late on a busy machine is no drop
    assert report.cells, "no probes"
    bad = [(x.source, x.destination, x.expected, x.observed, x.expected_client, x.observed_client)
           for x in report.disagreements]
    assert not bad, bad
    nodes = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in c.pods("default")}
    node_ip = {n["name"]: n["ip"] for n in c.state.nodes}
    for cell in report.cells:
        ingress = cell.source.split("@")[1]
        local = nodes[cell.destination.split("/")[1]] == ingress
        assert cell.expected == local, cell
        if local and cell.observed:
            assert cell.observed_client == node_ip[ingress]  # masqueraded to the node IP after policy
    assert any(x.expected for x in report.cells) and any(not x.expected for x in report.cells)
    proc = run_netsim("verify", "--from", "host/client", "--cluster", c.name, check=False)
    assert proc.returncode == 0 and "agree on all 0" not in proc.stdout, proc.stdout + proc.stderr


def test_explain_from_external_host_through_a_nodeport(allow_external: Cluster) -> None:
    """explain host/H NODEIP:NODEPORT judges each endpoint with the address it sees the packet from: the
    host's own behind the ingress node (allowed by the ipBlock), the ingress node's tunnel address
    elsewhere (denied)."""
    c = allow_external
    node = c.state.nodes[0]
    text = c.explain("host/client", node["ip"], 30080, "TCP", probe=False)
    local = [p["metadata"]["name"] for p in c.pods("default")
             if p["spec"]["nodeName"] == node["name"] and p["metadata"]["name"].startswith("web-")]
    assert f"judged from 203.0.113.10, the pod sees {node['ip']}" in text, text
    assert text.count(": allowed\n") == len(local) and text.count(": denied\n") == 3 - len(local), text


def test_verify_from_node_uses_tunnel_address_to_remote_pods(tour: Cluster) -> None:
    """deny-all: a node reaches only its own pods (host -> local pod is never policed), from its node IP;
    pods elsewhere are judged with its tunnel address and dropped."""
    report = tour.verify(frm="node/node-1", to="default/*", timeout=1.5)
    assert len(report.cells) == 3, report.cells  # the web pods: client and intruder declare no port
    assert report.ok, report.disagreements
    node1_pods = {p["metadata"]["name"] for p in tour.pods("default") if p["spec"]["nodeName"] == "node-1"}
    for cell in report.cells:
        assert cell.expected == (cell.destination.split("/")[1] in node1_pods), cell


def test_verify_of_nothing_is_an_error(tour: Cluster) -> None:
    for args, words in ((["--from", "node/node-1", "--to", "kube-public/*"], "selects no running pod"),
                        (["--from", "host/client", "--to", "default/client"], "nothing to probe")):
        proc = run_netsim("verify", *args, "--cluster", tour.name, check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _kernel_state(c: Cluster) -> dict[str, str]:
    """Each node's filter table and ipsets (what felix writes), without counters."""
    out = {}
    for n in c.state.nodes:
        ipt = c.kernel.run(n["netns"], ["iptables-save", "-t", "filter"]).stdout
        rules = [re.sub(r"\[\d+:\d+\]", "", line) for line in ipt.splitlines() if not line.startswith("#")]
        sets = sorted(c.kernel.run(n["netns"], ["ipset", "save"]).stdout.splitlines())
        out[n["name"]] = "\n".join(rules + sets)
    return out


def _pod(name: str, ports: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "wi", "labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "agnhost", "ports": ports}]}}


def test_verify_diff_killed_midway_leaves_the_cluster_as_it_was(tour: Cluster, tmp_path: Path) -> None:
    """`verify --diff` killed (SIGKILL) while its change is enforced: the daemon rolls the what-if back,
    and the stored policies and every node's filter rules and ipsets are exactly as before. Before, the
    diff applied the policy as a real object and a killed command left it in force."""
    c = tour
    c.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "wi"}},
             _pod("a", [{"containerPort": 80}]), _pod("b", [])])
    try:
        live = sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in c.get("NetworkPolicy"))
        before = _kernel_state(c)
        change = tmp_path / "isolate.yaml"
        change.write_text(yaml.safe_dump({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                          "metadata": {"name": "isolate-a", "namespace": "wi"},
                                          "spec": {"podSelector": {"matchLabels": {"app": "a"}},
                                                   "policyTypes": ["Ingress"]}}))
        # b -> a becomes denied: its probe waits out --timeout, which keeps the command in mid-run.
        proc = subprocess.Popen([*NETSIM, "verify", "--diff", str(change), "--from", "wi/b", "--to", "wi/a",
                                 "--timeout", "30", "--cluster", c.name],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (c.get(whatif.KIND, whatif.NAMESPACE)
                                                       or c.store.get("NetworkPolicy", "wi", "isolate-a")):
                assert proc.poll() is None, "verify --diff ended before its change was enforced"
                time.sleep(0.05)
            c.wait_converged(30)
            assert _kernel_state(c) != before, "the change was never enforced"
            assert proc.poll() is None, "verify --diff ended too early to be killed mid-run"
        finally:
            proc.kill()
            proc.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (c.get(whatif.KIND, whatif.NAMESPACE) or _kernel_state(c) != before):
            time.sleep(0.2)
        assert c.get(whatif.KIND, whatif.NAMESPACE) == []
        assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in c.get("NetworkPolicy")) == live
        assert _kernel_state(c) == before
        assert any(e.reason == "WhatIfRolledBack" for e in list_events(c.store))
        assert c.probe("wi/b", "wi/a", [80], timeout=2.0)[0].connected
    finally:
        for name in ("a", "b"):
            c.delete("Pod", name, "wi", force=True, wait=False)
        c.delete("Namespace", "wi", None)


def test_daemon_rolls_back_orphaned_and_expired_what_ifs(tour: Cluster) -> None:
    """A what-if whose owner process is gone, and one whose lease ran out (owner alive), are deleted by
    the daemon within a pass or two; a live one stays (and `verify` notes it) until its owner dies."""
    c = tour
    child = subprocess.Popen(["true"])
    child.wait()
    owner = subprocess.Popen(["sleep", "60"])
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "orphan", "namespace": "default"}, "spec": {"podSelector": {}}}
    now = time.time()

    def names() -> set[str]:
        return {w["metadata"]["name"] for w in c.get(whatif.KIND, whatif.NAMESPACE)}

    def wait_gone(gone: set[str]) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and gone & names():
            time.sleep(0.1)

    try:
        orphan = c.store.create(whatif.make([policy], whatif.Owner(child.pid, None), now))
        expired = c.store.create(whatif.make([policy], whatif.this_process(), now - 100, lease=1))
        kept = c.store.create(whatif.make([policy], whatif.Owner(owner.pid, whatif.process_start(owner.pid)), now))
        wait_gone({orphan["metadata"]["name"], expired["metadata"]["name"]})
        assert names() == {kept["metadata"]["name"]}
        report = c.verify("default/intruder", "default/*", [8080], timeout=0.3)
        assert any(f"pids {owner.pid})" in n for n in report.notes), report.notes
        owner.kill()
        owner.wait()
        wait_gone({kept["metadata"]["name"]})
        assert names() == set()
    finally:
        owner.kill()
        owner.wait()
        for name in names():
            c.store.delete(whatif.KIND, whatif.NAMESPACE, name)
        c.wait_converged()


def test_restarted_daemon_rolls_back_what_ifs_left_behind(tour: Cluster) -> None:
    """A what-if whose owner died while the daemon was down is rolled back by the restarted daemon's first
    pass, before it reports ready. (Last in this module: it restarts the cluster's daemon.)"""
    from netsim import daemonctl
    c = tour
    daemonctl.stop(c.name)
    child = subprocess.Popen(["true"])
    child.wait()
    left = c.store.create(whatif.make([{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                        "metadata": {"name": "left", "namespace": "default"},
                                        "spec": {"podSelector": {}}}], whatif.Owner(child.pid, None), time.time()))
    daemonctl.start(c.name, timeout=60)
    assert c.get(whatif.KIND, whatif.NAMESPACE) == []
    assert any(e.reason == "WhatIfRolledBack" and left["metadata"]["name"] in e.object for e in list_events(c.store))
