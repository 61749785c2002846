"""kube-proxy for one node: render the node's whole NAT/filter state and apply it in one restore.

Full sync at start and after any failure (reading `iptables-save` first so jump rules are ensured exactly
once), partial syncs otherwise, as kube-proxy's syncProxyRules does. The render state is kept only after
the kernel accepted the payload, so a failed restore is followed by a full sync.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from netsim.kernel.api import Kernel
from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort
from netsim.proxy.render import RenderState, SyncCounts, render_full, render_partial


@dataclass(frozen=True)
class SyncReport:
    """What one sync did, for the event timeline."""

    node: str
    full: bool
    counts: SyncCounts
    ms: float
    payload_bytes: int


class ProxyAgent:
    def __init__(self, kernel: Kernel, netns: str, node: NodeInfo, cfg: ProxyConfig):
        self.kernel = kernel
        self.netns = netns
        self.node = node
        self.cfg = cfg
        self.state: RenderState | None = None
        self.last_payload = ""

    def sync(self, services: Iterable[ServicePort], endpoints: dict[tuple[str, str], list[Endpoint]], *,
             full: bool = False) -> SyncReport:
        t0 = time.perf_counter()
        services = list(services)
        if full or self.state is None:
            existing = self.kernel.run(self.netns, ["iptables-save"]).stdout
            result = render_full(services, endpoints, self.node, self.cfg, existing_save=existing, prev=self.state)
        else:
            result = render_partial(self.state, services, endpoints, self.node, self.cfg)
        try:
            self.kernel.iptables_restore(self.netns, result.payload, noflush=True)
        except Exception:
            self.state = None  # the next sync is a full one
            raise
        self.state = result.state
        self.last_payload = result.payload
        return SyncReport(self.node.name, result.counts.full, result.counts,
                          round((time.perf_counter() - t0) * 1000, 2), len(result.payload))
