"""Staged full syncs and minimal partial syncs through the real iptables-nft-restore (root).

A throwaway node namespace `netsim-tstg<hex>-node` (removed by the finaliser) gets a ProxyAgent whose
config stages any sync that rewrites more than a few service chains, and leaves unchanged top-level chains
out of partial syncs. After each sync the kernel's own `iptables-save` must hold exactly the chains (and
rule counts) a fresh single-payload render of the same state describes.
"""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from netsim.node.proxy_agent import ProxyAgent
from netsim.proxy.iptables_text import Ruleset
from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort
from netsim.proxy.render import render_full

pytestmark = pytest.mark.root

NODE = NodeInfo("node-1", ("172.18.0.2",), "10.244.1.0/24")
CFG = ProxyConfig(cluster_cidr="10.244.0.0/16", restore_stage_chains=30, skip_unchanged_top_chains=True)


@pytest.fixture
def node_ns(kernel):
    name = f"netsim-tstg{secrets.token_hex(3)}-node"
    kernel.netns_create(name)
    try:
        yield name
    finally:
        kernel.netns_delete(name)


def _world(n: int):
    services = [ServicePort("default", f"s{i}", cluster_ip=f"10.96.3.{i + 1}", port=80,
                            node_port=30100 + i if i % 3 == 0 else 0) for i in range(n)]
    eps = {sp.key: [Endpoint(f"10.244.{1 + j % 2}.{i * 2 + j + 1}", 8080, f"node-{1 + j % 2}") for j in range(2)]
           for i, sp in enumerate(services)}
    return services, eps


def _kube_chains(kernel, ns: str) -> dict[tuple[str, str], int]:
    rs = Ruleset.from_text(kernel.run(ns, ["iptables-save"]).stdout)
    return {(t, n): len(c.rules) for t in ("filter", "nat") for n, c in rs.tables[t].chains.items()
            if n.startswith("KUBE-")}


def _expected(services, eps) -> dict[tuple[str, str], int]:
    rs = Ruleset.from_text(render_full(services, eps, NODE, dataclasses.replace(CFG, restore_stage_chains=0)).payload)
    return {(t, n): len(c.rules) for t in ("filter", "nat") for n, c in rs.tables[t].chains.items()
            if n.startswith("KUBE-")}


def test_staged_full_sync_then_minimal_partial_syncs(kernel, node_ns):
    services, eps = _world(40)  # 40 services x (SVC + 2 SEP) + 14 EXT chains: far above 30 -> staged
    agent = ProxyAgent(kernel, node_ns, NODE, CFG)
    report = agent.sync(services, eps)
    assert report.full and report.counts.stages > 3
    assert _kube_chains(kernel, node_ns) == _expected(services, eps)

    # One endpoint moves: one small restore, no top-level chain rewritten.
    sp = services[5]
    eps2 = {**eps, sp.key: [eps[sp.key][0], Endpoint("10.244.2.200", 8080, "node-2")]}
    report = agent.sync(services, eps2)
    assert not report.full and report.counts.services_rewritten == ("default/s5",)
    assert "nat/KUBE-SERVICES" in report.counts.top_chains_skipped and report.counts.stages == 1
    assert "KUBE-SERVICES" not in agent.last_payload
    assert _kube_chains(kernel, node_ns) == _expected(services, eps2)

    # A service goes away and another loses its endpoints: the top-level chains are rewritten.
    services3 = [s for s in services if s.name != "s7"]
    eps3 = {k: v for k, v in eps2.items() if k != services[7].key}
    eps3[services[9].key] = []
    report = agent.sync(services3, eps3)
    assert not report.full and report.counts.top_chains_skipped == ()
    assert _kube_chains(kernel, node_ns) == _expected(services3, eps3)

    # A full resync over the existing rules (staged again) adds no duplicate jumps and changes nothing.
    report = agent.sync(services3, eps3, full=True)
    assert report.full and report.counts.jump_rules_added == 0
    assert _kube_chains(kernel, node_ns) == _expected(services3, eps3)


def _nat_rules(kernel, ns: str) -> dict[str, list[str]]:
    rs = Ruleset.from_text(kernel.run(ns, ["iptables-save", "-t", "nat"]).stdout)
    return {n: [" ".join(r) for r in c.rules] for n, c in rs.tables["nat"].chains.items() if n.startswith(SERVICE)}


SERVICE = ("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-")


def _expected_nat(services, eps, cfg) -> dict[str, list[str]]:
    res = render_full(services, eps, NODE, dataclasses.replace(cfg, restore_stage_chains=0))
    rs = Ruleset.from_text(res.payload)
    return {n: [" ".join(r) for r in c.rules] for n, c in rs.tables["nat"].chains.items() if n.startswith(SERVICE)}


def test_a_service_larger_than_a_stage_through_the_real_restore(kernel, node_ns):
    """netsim.proxy.huge: one Service with more endpoint chains than a stage, grown, shrunk (in-place `-R`
    and `-D` by position, stale chains deleted in chunks) and rewritten after a restart, by the real
    iptables-nft-restore; the kernel must end with exactly the rules of one payload each time."""
    cfg = dataclasses.replace(CFG, large_cluster_threshold=50)
    big = ServicePort("default", "big", cluster_ip="10.96.3.200", port=80, node_port=30200)
    agent = ProxyAgent(kernel, node_ns, NODE, cfg)
    for lo, hi in ((0, 70), (0, 95), (20, 48), (60, 66)):
        eps = {big.key: [Endpoint(f"10.244.2.{i + 1}", 8080, "node-2") for i in range(lo, hi)]}
        report = agent.sync([big], eps)
        assert report.counts.stages > 1 or hi - lo < 30
        # iptables-save prints probabilities with its own precision: compare the service chains and the
        # targets (endpoint chains, DNAT destinations) of their rules.
        got, want = _nat_rules(kernel, node_ns), _expected_nat([big], eps, cfg)
        assert got.keys() == want.keys()
        for name in want:
            assert [r.split()[-1] for r in got[name]] == [r.split()[-1] for r in want[name]], name
    restarted = ProxyAgent(kernel, node_ns, NODE, cfg)
    eps = {big.key: [Endpoint(f"10.244.2.{i + 1}", 8080, "node-2") for i in range(5, 80)]}
    restarted.sync([big], eps)
    got, want = _nat_rules(kernel, node_ns), _expected_nat([big], eps, cfg)
    assert {n: [r.split()[-1] for r in v] for n, v in got.items()} == \
        {n: [r.split()[-1] for r in v] for n, v in want.items()}
