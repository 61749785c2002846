"""kube-proxy for one node: render the node's whole NAT/filter state and apply it in one restore.

Full sync at start and after any failure (reading `iptables-save` first so jump rules are ensured exactly
once), partial syncs otherwise, as kube-proxy's syncProxyRules does. The render state is kept only after
the kernel accepted the payload, so a failed restore is followed by a full sync. A sync that rewrites
thousands of service chains is applied in stages (see ProxyConfig.restore_stage_chains); a failure in any
stage also leads to a full sync. After a sync, stale UDP conntrack entries of Services are deleted as
kube-proxy does (netsim.proxy.conntrack).

With nodePortAddresses set to CIDRs, the node's addresses are read from its namespace at every sync, as
kube-proxy's NodePortAddresses.GetNodeIPs lists the host's interface addresses each time (so a cni0 or
flannel.1 address inside a given CIDR answers NodePorts too). `rules_intact` is kube-proxy's periodic
check (ipt.Monitor, every syncPeriod): when kube-proxy's chains lost their rules, the next sync is full.

A caller that knows which Services changed since the last sync (kube-proxy's change trackers,
netsim.agents.kube_proxy) passes them as `changed`: the agent keeps them pending until a sync succeeds
(upstream's change trackers hold `PendingChanges()` until syncProxyRules succeeded, and a failed sync is
followed by a full one), and the render and the conntrack clean-up then look at those Services only.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from netsim.kernel.api import Kernel, KernelError
from netsim.proxy.conntrack import UdpFrontends, parse_flows, stale_deletions, udp_frontends
from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort
from netsim.proxy.render import RenderState, SyncCounts, render_full, render_partial

log = logging.getLogger("netsim.proxy")
# How long one iptables-save or restore stage may take. Upstream kube-proxy gives them no deadline at all
# (k8s.io/kubernetes pkg/util/iptables/iptables.go restoreInternal and SaveInto run the command to its end);
# the kernel layer's default 30 s was exceeded by a 10,000-Service stage on a loaded machine (load 20-30),
# the failed sync made the next one a full one, whose iptables-save of the 170k-rule table timed out again:
# the node never converged. A generous bound still ends a command that hangs.
IPTABLES_TIMEOUT = 600.0
LAST_PAYLOAD_MAX = 256 * 1024  # ProxyAgent.last_payload keeps a payload up to this size (characters)


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
        self._udp_of: dict[str, UdpFrontends] = {}  # per Service (`ns/name`): its UDP frontends, as synced
        # Services changed since the last successful sync (`ns/name` -> its ports now), as handed in.
        self._pending: dict[str, Sequence[ServicePort]] = {}
        self.conntrack_deleted = 0  # `conntrack -D` filters run so far (for tests and the timeline)

    def _udp_fronts_now(self, services: Sequence[ServicePort],
                        endpoints: Mapping[tuple[str, str], Sequence[Endpoint]],
                        changed: Mapping[str, Sequence[ServicePort]] | None) -> UdpFrontends | None:
        """Every UDP frontend with its serving endpoints (Services in (namespace, name) order), kept per
        Service; None when no Service's frontends changed. With `changed` only those Services are looked
        at: the frontends of a Service without UDP ports, or whose UDP endpoints did not change, stay."""
        if changed is None:
            udp: dict[str, list[ServicePort]] = {}
            for sp in services:
                if sp.protocol == "UDP":
                    udp.setdefault(sp.service_name, []).append(sp)
            self._udp_of = {s: f for s, ports in udp.items() if (f := udp_frontends(ports, endpoints))}
        else:
            moved = False
            for s, ports in changed.items():
                udp_ports = [sp for sp in ports if sp.protocol == "UDP"]
                now = udp_frontends(udp_ports, endpoints) if udp_ports else None
                if not now:
                    moved = self._udp_of.pop(s, None) is not None or moved
                elif self._udp_of.get(s) != now:
                    self._udp_of[s] = now
                    moved = True
            if not moved:
                return None
        by_ip: dict[tuple[str, int], frozenset[str]] = {}
        by_np: dict[int, frozenset[str]] = {}
        for s in sorted(self._udp_of, key=lambda s: tuple(s.split("/", 1))):
            by_ip.update(self._udp_of[s].by_ip_port)
            by_np.update(self._udp_of[s].by_node_port)
        return UdpFrontends(by_ip, by_np)

    def _clean_udp_conntrack(self, services: Sequence[ServicePort],
                             endpoints: Mapping[tuple[str, str], Sequence[Endpoint]],
                             changed: Mapping[str, Sequence[ServicePort]] | None) -> None:
        """kube-proxy's CleanStaleEntries after a sync (see netsim.proxy.conntrack). Flows can only have
        become stale when some UDP frontend's serving endpoints changed, so nothing runs otherwise."""
        fronts = self._udp_fronts_now(services, endpoints, changed)
        if fronts is None:
            return
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

    def sync(self, services: Iterable[ServicePort], endpoints: Mapping[tuple[str, str], Sequence[Endpoint]], *,
             full: bool = False, changed: Mapping[str, Sequence[ServicePort]] | None = None) -> SyncReport:
        """One sync of `services` / `endpoints` (the whole maps). `changed`: the Services (`ns/name` -> their
        ports now, none when gone) whose ports or endpoints changed since the previous call; without it
        every port is compared with the previous sync."""
        t0 = time.perf_counter()
        # The render state is large and long-lived (every rule string of every service); a cyclic GC pass
        # triggered by a sync's allocations would walk all of it and cost more than a partial sync itself.
        # Rendering makes no reference cycles, so collection can wait until the sync is done.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._sync(t0, tuple(services), endpoints, full, changed)
        finally:
            if gc_was_enabled:
                gc.enable()

    def node_info(self) -> NodeInfo:
        """The node as this sync sees it: with CIDR nodePortAddresses, every IPv4 address in the node's
        namespace (the node IP first, then in the kernel's order); otherwise the node as configured."""
        if self.cfg.nodeport_match_all(self.node) or self.cfg.nodeport_primary():
            return self.node
        ips = list(self.node.ips)
        for _, cidr in self.kernel.addrs(self.netns):
            ip = str(ipaddress.ip_interface(cidr).ip)
            if ip not in ips:
                ips.append(ip)
        return replace(self.node, ips=tuple(ips))

    def rules_intact(self) -> bool:
        """kube-proxy's periodic check: are its fixed chains still holding their rules? (upstream watches
        KUBE-PROXY-CANARY chains; netsim looks at the chains every sync writes, nat KUBE-MARK-MASQ and
        filter KUBE-FORWARD, so a flush of either table is noticed too). A failed check makes the next sync
        a full one."""
        if self.state is None:
            return True  # nothing written yet, or a full sync is already due
        try:
            for table, chain in (("nat", "KUBE-MARK-MASQ"), ("filter", "KUBE-FORWARD")):
                out = self.kernel.run(self.netns, ["iptables", "-w", "-t", table, "-S", chain], check=False)
                if out.returncode != 0 or f"-A {chain} " not in (out.stdout or ""):
                    log.warning("%s: kube-proxy's %s/%s lost its rules; the next sync is a full one",
                                self.netns, table, chain)
                    self.state = None
                    return False
        except KernelError as exc:  # no iptables tool to look with: nothing to conclude
            log.warning("%s: kube-proxy rule check skipped: %s", self.netns, exc)
        return True

    def _sync(self, t0: float, services: tuple[ServicePort, ...],
              endpoints: Mapping[tuple[str, str], Sequence[Endpoint]], full: bool,
              changed: Mapping[str, Sequence[ServicePort]] | None) -> SyncReport:
        node = self.node_info()
        if changed is not None:
            self._pending.update(changed)
        pending = None if changed is None else self._pending
        if full or self.state is None:
            existing = self.kernel.run(self.netns, ["iptables-save"], timeout=IPTABLES_TIMEOUT).stdout
            result = render_full(services, endpoints, node, self.cfg, existing_save=existing, prev=self.state)
            pending = None  # every port was looked at
        else:
            result = render_partial(self.state, services, endpoints, node, self.cfg, pending)
        try:
            # Usually one restore; very large syncs come in stages (ProxyConfig.restore_stage_chains), and
            # a partial sync with nothing to change has none.
            for payload in result.restores():
                self.kernel.iptables_restore(self.netns, payload, noflush=True, timeout=IPTABLES_TIMEOUT)
        except Exception:
            self.state = None  # the next sync is a full one
            raise
        self.state = result.state
        # Kept for inspection when small: a full payload of a 10,000-endpoint Service is megabytes on each
        # of 100 nodes.
        self.last_payload = result.payload if len(result.payload) <= LAST_PAYLOAD_MAX else ""
        self._clean_udp_conntrack(services, endpoints, pending)
        self._pending = {}
        return SyncReport(self.node.name, result.counts.full, result.counts,
                          round((time.perf_counter() - t0) * 1000, 2), len(result.payload))
