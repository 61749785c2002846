"""calico's natOutgoing on the kernel: pods reach outside the cluster because felix masquerades them, and
`netsim trace` tells when an answer cannot come back - agreeing with the kernel, or exiting 3 when its
simulation promises a round trip the kernel does not make.

Two one-node calico clusters (natOutgoing on, the default, and off), each with an external host on its
own subnet that nothing listens on: a TCP connection is refused (the RST came back) or times out (the
RST was lost at the fabric, which has no route to pod addresses).
"""

from __future__ import annotations

import json
import secrets

import pytest
from click.testing import CliRunner

from netsim.api import Cluster
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.trace import hops as H
from netsim.trace.api import trace
from netsim.trace.observe.facts import from_cluster

pytestmark = pytest.mark.root

EXT = "203.0.113.10"
CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {containers: [{name: c, image: busybox}]}
"""


def _up(kernel, nat_outgoing: bool | None):
    network = {"plugin": "calico", "backend": "vxlan"}
    if nat_outgoing is not None:
        network["natOutgoing"] = nat_outgoing
    name = f"cn{secrets.token_hex(3)}"
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                          "spec": {"nodes": 1, "network": network,
                                   "externalHosts": [{"name": "ext", "ip": EXT}]}}, Source("<test>"))
    c = None
    try:
        c = Cluster.up(spec, timeout=60)
        c.apply(CLIENT)
        yield c
    finally:
        if c is not None:
            c.down()
        else:
            from netsim import lifecycle

            lifecycle.down(kernel, name)


@pytest.fixture(scope="module")
def masquerading(kernel):
    yield from _up(kernel, None)


@pytest.fixture(scope="module")
def not_masquerading(kernel):
    yield from _up(kernel, False)


def test_pods_reach_an_external_host_masqueraded_to_the_node(masquerading):
    [r] = masquerading.probe("default/client", EXT, [8000], ["TCP"], timeout=1.0)
    assert r.outcome == "refused", r  # the host's RST came back through the node's conntrack
    node = masquerading.state.node("node-1")
    save = masquerading.kernel.run(node["netns"], ["iptables-save", "-t", "nat"]).stdout
    assert "-A cali-nat-outgoing" in save and "--match-set cali40masq-ipam-pools src" in save
    report = trace(masquerading, "default/client", f"{EXT}:8000")
    sim, obs = report.simulated, report.observed
    assert report.agree, report.disagreements
    for path in (sim, obs):
        assert path.verdict == H.VERDICT_DELIVERED and path.masquerade and path.returned is True
        [snat] = [h for h in path.hops if h.component == H.NAT and h.direction == "request"]
        assert snat.translated["src"].split(":")[0] == node["ip"]


def test_without_nat_outgoing_the_answer_is_lost_and_trace_says_so(not_masquerading):
    c = not_masquerading
    [r] = c.probe("default/client", EXT, [8000], ["TCP"], timeout=0.5)
    assert r.outcome == "timeout", r
    report = trace(c, "default/client", f"{EXT}:8000")
    sim, obs = report.simulated, report.observed
    assert report.agree, report.disagreements
    assert sim.returned is False and obs.returned is False and not sim.masquerade and not obs.masquerade
    assert obs.answered and obs.answered.startswith("RST")  # the host did answer; the fabric dropped it
    assert "the fabric has no route to" in [h for h in sim.hops if h.direction == "reply"][-1].detail


def test_a_simulated_round_trip_the_kernel_does_not_make_is_a_disagreement(masquerading):
    """The simulation reads the node while it masquerades; then the masquerade set is emptied behind
    its back: the kernel's answer never returns, and trace must say so (exit 3 on the CLI)."""
    c = masquerading
    view = from_cluster(c)
    view.node("node-1")  # read the node now, while natOutgoing is in force
    ns = c.state.node("node-1")["netns"]
    c.kernel.run(ns, ["ipset", "flush", "cali40masq-ipam-pools"])
    try:
        report = trace(c, "default/client", f"{EXT}:8000", view=view)
    finally:
        c.kernel.run(ns, ["ipset", "add", "cali40masq-ipam-pools", c.spec.network.pod_cidr])
    assert not report.agree
    assert report.simulated.returned is True and report.observed.returned is False
    assert any(d.startswith("reply: simulated it reaches the source") for d in report.disagreements)
    data = report.to_json()
    assert data["simulatedSummary"]["returned"] is True and data["observedSummary"]["returned"] is False


def test_cli_trace_exit_code_and_json(not_masquerading):
    from netsim.cli.main import cli
    from netsim.cli.trace import trace as trace_cmd

    if "trace" not in cli.commands:
        cli.add_command(trace_cmd)
    res = CliRunner().invoke(cli, ["trace", "--cluster", not_masquerading.name, "default/client",
                                   f"{EXT}:8000", "-o", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["agree"] and data["observedSummary"]["returned"] is False
