"""minSyncPeriod / syncPeriod pacing of a node's kube-proxy (netsim.node.sync_runner, as kube-proxy's
BoundedFrequencyRunner with burstSyncs 2), and what the agent reads from its node for nodePortAddresses
and for the periodic rule check. Pure: the clock is a number, the kernel a FakeKernel."""

from __future__ import annotations

import subprocess

from netsim.kernel.fake import FakeKernel
from netsim.node.proxy_agent import ProxyAgent
from netsim.node.sync_runner import SyncRunner
from netsim.proxy.model import NodeInfo, ProxyConfig


def test_zero_min_sync_period_never_holds_a_sync() -> None:
    r = SyncRunner(0.0, 30.0, now=0.0)
    assert all(r.try_run(0.0) for _ in range(100))
    assert r.wait(0.0) == 0.0


def test_two_syncs_burst_then_one_per_min_sync_period() -> None:
    r = SyncRunner(2.0, 30.0, now=100.0)
    assert r.try_run(100.0) and r.try_run(100.0)  # burstSyncs = 2
    assert not r.try_run(100.0)
    assert r.wait(100.0) == 2.0
    assert not r.try_run(101.0) and abs(r.wait(101.0) - 1.0) < 1e-9
    assert r.try_run(102.0)
    assert not r.try_run(102.5)
    # A quiet spell refills the bucket, but never beyond two.
    assert r.try_run(110.0) and r.try_run(110.0) and not r.try_run(110.0)


def test_sync_period_schedules_the_rule_check() -> None:
    r = SyncRunner(0.0, 30.0, now=0.0)
    assert r.check_due(10.0) == 20.0
    assert r.check_due(30.0) <= 0
    r.checked(30.0)
    assert r.check_due(31.0) == 29.0


def _agent(k: FakeKernel, cfg: ProxyConfig) -> ProxyAgent:
    k.netns_create("n1")
    return ProxyAgent(k, "n1", NodeInfo("node-1", ("172.18.0.2",), "10.244.0.0/24"), cfg)


def test_cidr_node_port_addresses_read_the_nodes_addresses() -> None:
    """GetNodeIPs lists the host's interface addresses at each sync: a cni0 address inside the CIDRs
    answers NodePorts as well."""
    k = FakeKernel()
    a = _agent(k, ProxyConfig(cluster_cidr="10.244.0.0/16", nodeport_addresses=("10.244.0.0/16",)))
    k.bridge_add("n1", "eth0")
    k.bridge_add("n1", "cni0")
    k.addr_add("n1", "eth0", "172.18.0.2/16")
    k.addr_add("n1", "cni0", "10.244.0.1/24")
    node = a.node_info()
    assert node.ips == ("172.18.0.2", "10.244.0.1")
    assert a.cfg.nodeport_ips(node) == ["10.244.0.1"]
    a.sync([], {})
    assert "-d 10.244.0.1 -j KUBE-NODEPORTS" in a.last_payload
    # Default (all local addresses): the node as configured, no address dump.
    b = _agent(FakeKernel(), ProxyConfig(cluster_cidr="10.244.0.0/16"))
    assert b.node_info() is b.node


def test_rule_check_forces_a_full_sync_when_chains_lost_their_rules() -> None:
    k = FakeKernel()
    a = _agent(k, ProxyConfig(cluster_cidr="10.244.0.0/16"))
    assert a.rules_intact()  # nothing written yet: nothing to check
    a.sync([], {})
    assert a.state is not None
    k.run_results["iptables"] = subprocess.CompletedProcess([], 0, "-N KUBE-MARK-MASQ\n-A KUBE-MARK-MASQ -j MARK "
                                                               "--or-mark 0x4000\n-A KUBE-FORWARD -j ACCEPT\n", "")
    assert a.rules_intact() and a.state is not None
    k.run_results["iptables"] = subprocess.CompletedProcess([], 0, "-N KUBE-MARK-MASQ\n", "")  # flushed
    assert not a.rules_intact()
    assert a.state is None  # the next sync is a full one
    report = a.sync([], {})
    assert report.full
