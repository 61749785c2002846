"""The LoadBalancer IP speaker: MetalLB's layer 2 mode for the whole cluster.

Each LoadBalancer ingress IP and externalIP is announced by one live node: inside the node network that node
answers ARP for it on the underlay, outside it the fabric routes the IP to that node. Constructed with the
cluster's identity (spec, nodes), a kernel and the store; `sync(live_nodes)` after Services, EndpointSlices
or the set of live nodes changed converges the kernel to the announcements the store asks for, touching only
the IPs whose announcing node changed.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from netsim import naming
from netsim.agents.changes import ChangeTracker
from netsim.kernel.api import Kernel, Route
from netsim.model.cluster import ClusterSpec
from netsim.model.errors import NetsimError
from netsim.node.network import NodeRec
from netsim.store import Store

EventFn = Callable[[str, str, str, str], None]  # (object ref, reason, message, actor)


class Speaker:
    def __init__(self, spec: ClusterSpec, nodes: dict[str, NodeRec], kernel: Kernel, store: Store,
                 events: EventFn):
        self.spec = spec
        self.nodes = nodes
        self.kernel = kernel
        self.store = store
        self.events = events
        self._announced: dict[str, str] = {}  # service IP -> announcing node
        # What the announcements depend on, kept from the store's change log (a speaker watches Services and
        # EndpointSlices as MetalLB's does): a sync after one slice changed reads that slice, not all of them.
        self._tracker = ChangeTracker(store, ("Service", "EndpointSlice"))
        self._exposed: dict[str, tuple[bool, tuple[str, ...]]] = {}  # ns/svc -> (Local policy, IPs), only with IPs
        self._serving: dict[str, dict[str, frozenset[str]]] = {}  # ns/svc -> slice name -> nodes serving
        self._slice_owner: dict[str, str] = {}  # ns/slice -> ns/svc whose entry in _serving it has

    @property
    def announced(self) -> dict[str, str]:
        """Which node announces each IP now."""
        return dict(self._announced)

    def sync(self, live_nodes: Iterable[str]) -> None:
        """LoadBalancer ingress IPs and externalIPs are made reachable from outside, as MetalLB's L2 mode
        does: one live node per IP (a stable hash over the live nodes, so it moves only when that node
        fails) answers ARP for it on the underlay (a proxy neighbour entry; the kernel answers only for
        addresses it routes out of another device, hence the /32 via lo, which DNAT makes moot). IPs
        outside the node network are routed to the announcing node by the fabric, as an upstream router
        would be configured for externalIPs."""
        self._take_changes()
        # Every live node of the cluster takes part in the election, this speaker's or another host's
        # (MetalLB: the speakers' memberlist); this speaker announces only the IPs elected to its nodes.
        live = sorted(set(live_nodes))
        desired: dict[str, str] = {}
        for key, (local, ips) in (sorted(self._exposed.items()) if live else ()):  # as listed: by namespace/name
            # With externalTrafficPolicy Local only nodes with a serving endpoint announce (MetalLB speaker
            # layer2_controller.go ShouldAnnounce), or the announcing node would drop the traffic.
            if local:
                serving = set().union(*self._serving.get(key, {}).values())
                candidates = [n for n in live if n in serving]
            else:
                candidates = live
            if not candidates:
                continue
            for ip in ips:
                digest = int(hashlib.sha256(ip.encode()).hexdigest(), 16)
                desired[ip] = candidates[digest % len(candidates)]
        desired = {ip: node for ip, node in desired.items() if node in self.nodes}
        if desired == self._announced:
            return
        for ip, node in self._announced.items():
            if desired.get(ip) != node:
                self.announce(ip, node, withdraw=True)
        for ip, node in desired.items():
            if self._announced.get(ip) != node:
                self.announce(ip, node)
        self._announced = desired

    def _take_changes(self) -> None:
        """Services with IPs to announce and the nodes serving each Service's endpoints, from what changed
        since the last sync (everything on the first one, or after the change log was compacted past it)."""
        batch = self._tracker.poll()
        if batch.resync:
            self._exposed.clear()
            self._serving.clear()
            self._slice_owner.clear()
        for (kind, namespace, name), obj in batch.objects.items():
            if kind == "Service":
                self._service(f"{namespace or 'default'}/{name}", obj)
            else:
                self._slice(f"{namespace or 'default'}/{name}", namespace or "default", obj)

    def _typed(self, obj: dict | None) -> Any:
        """The typed object of a change log row (the store's parse cache's); None when deleted or when it
        does not parse (logged once per version by the cache: it is announced as if gone)."""
        if obj is None:
            return None
        try:
            return self.store.decode(obj)
        except NetsimError:
            return None

    def _service(self, key: str, svc_row: dict | None) -> None:
        svc = self._typed(svc_row)
        ips = (*svc.external_ips, *svc.status.ingress_ips) if svc is not None else ()
        if ips:
            self._exposed[key] = (svc.external_traffic_policy == "Local", tuple(ips))
        else:
            self._exposed.pop(key, None)

    def _slice(self, key: str, namespace: str, row: dict | None) -> None:
        old = self._slice_owner.pop(key, None)
        if old is not None:
            self._serving[old].pop(key, None)
            if not self._serving[old]:
                del self._serving[old]
        sl = self._typed(row)
        if sl is None:
            return
        svc_name = sl.meta.labels.get("kubernetes.io/service-name")
        nodes = frozenset(ep.node_name for ep in sl.endpoints if ep.node_name and ep.is_serving)
        if svc_name and nodes:
            owner = f"{namespace}/{svc_name}"
            self._serving.setdefault(owner, {})[key] = nodes
            self._slice_owner[key] = owner

    def announce(self, ip: str, node: str, *, withdraw: bool = False) -> None:
        rec = self.nodes[node]
        ns = naming.node_ns(self.spec.name, node)
        host_route = Route(dst=f"{ip}/32", dev="lo")
        if ipaddress.ip_address(ip) in self.spec.node_net:
            if withdraw:
                self.kernel.neigh_proxy_del(ns, naming.UPLINK, ip)
                self.kernel.route_del(ns, host_route)
            else:
                self.kernel.sysctl_set(ns, f"net.ipv4.neigh.{naming.UPLINK}.proxy_delay", 0)
                self.kernel.route_replace(ns, host_route)
                self.kernel.neigh_proxy_add(ns, naming.UPLINK, ip)
        else:
            route = Route(dst=f"{ip}/32", via=rec.ip)
            fabric = naming.fabric_ns(self.spec.name)
            if withdraw:
                self.kernel.route_del(fabric, route)
            else:
                self.kernel.route_replace(fabric, route)
        self.events(f"node/{node}", "IPWithdrawn" if withdraw else "IPAnnounced",
                    f"{ip} {'no longer ' if withdraw else ''}announced by {node}", "speaker")
