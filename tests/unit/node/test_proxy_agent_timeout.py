"""kube-proxy's restores and its iptables-save are not cut off by the kernel layer's 30 s default: on a
loaded machine a 10,000-Service stage took longer, and each failed sync made the next a full one that timed
out again (upstream runs them to their end, pkg/util/iptables/iptables.go)."""

from __future__ import annotations

from netsim.kernel.fake import FakeKernel
from netsim.node.proxy_agent import IPTABLES_TIMEOUT, ProxyAgent
from netsim.proxy.config import ProxyConfig
from netsim.proxy.model import Endpoint, NodeInfo, ServicePort


class _Kernel(FakeKernel):
    def __init__(self):
        super().__init__()
        self.timeouts: list[tuple[str, float | None]] = []

    def iptables_restore(self, ns, payload, *, noflush=True, counters=False, timeout=30):
        self.timeouts.append(("restore", timeout))
        return super().iptables_restore(ns, payload, noflush=noflush, counters=counters, timeout=timeout)

    def run(self, ns, argv, *, timeout=30, **kw):
        if list(argv)[:1] == ["iptables-save"]:
            self.timeouts.append(("save", timeout))
        return super().run(ns, argv, timeout=timeout, **kw)


def test_a_full_sync_gives_save_and_restore_room_beyond_the_default():
    k = _Kernel()
    k.netns_create("n1")
    agent = ProxyAgent(k, "n1", NodeInfo("node-1", ("10.0.0.1",), "10.244.1.0/24", None), ProxyConfig())
    sp = ServicePort(namespace="default", name="web", port_name="", protocol="TCP", cluster_ip="10.96.0.10",
                     port=80)
    agent.sync([sp], {sp.key: [Endpoint(ip="10.244.1.5", port=8080, node_name="node-1", ready=True)]})
    assert {w for w, _ in k.timeouts} == {"save", "restore"}
    assert all(t is None or t >= IPTABLES_TIMEOUT >= 300 for _, t in k.timeouts)
