"""The README tour's policy commands on a real cluster: `explain` through a Service with a named
targetPort, `verify` from nodes and external hosts, and `verify --diff` that never leaves the live
cluster changed (also when the command is killed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsim import lifecycle
from netsim.api import Cluster
from tests.conftest import run_netsim, unique_name

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
    report = c.verify(frm="host/client", timeout=0.5)
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


def test_verify_from_node_uses_tunnel_address_to_remote_pods(tour: Cluster) -> None:
    """deny-all: a node reaches only its own pods (host -> local pod is never policed), from its node IP;
    pods elsewhere are judged with its tunnel address and dropped."""
    report = tour.verify(frm="node/node-1", timeout=0.5)
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
