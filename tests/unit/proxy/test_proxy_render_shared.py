"""Memory of kube-proxy's render states across nodes (issue #18: 10,000 pods on 100 nodes under 1 GB).

Every node renders the same Services; the rule texts of a ClusterIP Service's chains are the same on
every node, so the nodes' render states must share one copy of each (the daemon holds 100 of them), and
a node's agent must not keep a multi-megabyte payload after applying it. Identities and sizes only.
"""

from __future__ import annotations

from netsim.kernel.fake import FakeKernel
from netsim.node.proxy_agent import LAST_PAYLOAD_MAX, ProxyAgent
from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort
from netsim.proxy.render import _render_port

CFG = ProxyConfig(cluster_cidr="10.244.0.0/16")


def _endpoints(n: int) -> list[Endpoint]:
    return [Endpoint(f"10.244.{i // 250}.{i % 250 + 1}", 80, f"node-{i % 7}") for i in range(n)]


def test_two_nodes_share_the_rule_texts_of_a_service() -> None:
    sp = ServicePort("default", "web", cluster_ip="10.96.0.10", port=80)
    eps = _endpoints(300)
    a = _render_port(sp, eps, NodeInfo("node-1", ("172.18.0.2",), "10.244.0.0/24"), CFG, False)
    b = _render_port(sp, list(eps), NodeInfo("node-2", ("172.18.0.3",), "10.244.1.0/24"), CFG, False)
    assert a.chain_rules == b.chain_rules and len(a.chain_rules) > 600
    assert all(x is y for x, y in zip(a.chain_rules, b.chain_rules, strict=True))
    assert all(x is y for x, y in zip(a.chain_names, b.chain_names, strict=True))
    assert all(x is y for x, y in zip(a.top_nat, b.top_nat, strict=True))


def test_the_agent_does_not_keep_a_large_payload() -> None:
    k = FakeKernel()
    k.netns_create("n1")
    agent = ProxyAgent(k, "n1", NodeInfo("node-1", ("172.18.0.2",), "10.244.0.0/24"), CFG)
    sp = ServicePort("default", "web", cluster_ip="10.96.0.10", port=80)
    eps = _endpoints(3000)
    report = agent.sync([sp], {sp.key: eps})
    assert report.payload_bytes > LAST_PAYLOAD_MAX
    assert agent.last_payload == ""
    small = ProxyAgent(k, "n1", NodeInfo("node-1", ("172.18.0.2",), "10.244.0.0/24"), CFG)
    small.sync([sp], {sp.key: eps[:3]})
    assert "-j DNAT --to-destination 10.244.0.1:80" in small.last_payload
