"""kube-proxy for one node: render the node's whole NAT/filter state and apply it in one restore.

Full sync at start and after any failure (reading `iptables-save` first so jump rules are ensured exactly
once), partial syncs otherwise, as kube-proxy's syncProxyRules does. The render state is kept only after
the kernel accepted the payload, so a failed restore is followed by a full sync. A sync that rewrites
thousands of service chains is applied in stages (see ProxyConfig.restore_stage_chains); a failure in any
stage also leads to a full sync. After a sync, stale UDP conntrack entries of Services are deleted as
kube-proxy does (netsim.proxy.conntrack).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from netsim.kernel.api import Kernel, KernelError
from netsim.proxy.conntrack import UdpFrontends, parse_flows, stale_deletions, udp_frontends
from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort
from netsim.proxy.render import RenderState, SyncCounts, render_full, render_partial

log = logging.getLogger("netsim.proxy")


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
        self._udp_fronts: UdpFrontends | None = None  # as of the last conntrack clean-up
        self.conntrack_deleted = 0  # `conntrack -D` filters run so far (for tests and the timeline)

    def _clean_udp_conntrack(self, services: list[ServicePort],
                             endpoints: dict[tuple[str, str], list[Endpoint]]) -> None:
        """kube-proxy's CleanStaleEntries after a sync (see netsim.proxy.conntrack). Flows can only have
        become stale when some UDP frontend's serving endpoints changed, so nothing runs otherwise."""
        fronts = udp_frontends(services, endpoints)
        if fronts == self._udp_fronts or (not fronts and self._udp_fronts is None):
            return
        try:
            listing = self.kernel.run(self.netns, ["conntrack", "-L", "-p", "udp"], check=False).stdout
            for argv in stale_deletions(parse_flows(listing or ""), fronts):
                self.kernel.run(self.netns, ["conntrack", "-D", *argv], check=False)
                self.conntrack_deleted += 1
        except KernelError as exc:  # no conntrack tool: the rules are right, only old flows linger
            log.warning("%s: UDP conntrack clean-up skipped: %s", self.netns, exc)
        self._udp_fronts = fronts

    def sync(self, services: Iterable[ServicePort], endpoints: dict[tuple[str, str], list[Endpoint]], *,
             full: bool = False) -> SyncReport:
        t0 = time.perf_counter()
        # The render state is large and long-lived (every rule string of every service); a cyclic GC pass
        # triggered by a sync's allocations would walk all of it and cost more than a partial sync itself.
        # Rendering makes no reference cycles, so collection can wait until the sync is done.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._sync(t0, list(services), endpoints, full)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _sync(self, t0: float, services: list[ServicePort], endpoints: dict[tuple[str, str], list[Endpoint]],
              full: bool) -> SyncReport:
        if full or self.state is None:
            existing = self.kernel.run(self.netns, ["iptables-save"]).stdout
            result = render_full(services, endpoints, self.node, self.cfg, existing_save=existing, prev=self.state)
        else:
            result = render_partial(self.state, services, endpoints, self.node, self.cfg)
        try:
            # Usually one restore; very large syncs come in stages (ProxyConfig.restore_stage_chains), and
            # a partial sync with nothing to change has none.
            for payload in result.restores():
                self.kernel.iptables_restore(self.netns, payload, noflush=True)
        except Exception:
            self.state = None  # the next sync is a full one
            raise
        self.state = result.state
        self.last_payload = result.payload
        self._clean_udp_conntrack(services, endpoints)
        return SyncReport(self.node.name, result.counts.full, result.counts,
                          round((time.perf_counter() - t0) * 1000, 2), len(result.payload))
