"""The flannel-like backend for every node (flannel and canal), driven by the Node objects' change log.

flanneld watches the subnet leases (flannel pkg/subnet/kube: one lease per Node, its podCIDR and public IP)
and handles each lease event on its own (pkg/backend/vxlan/vxlan_network.go handleSubnetEvents: a lease
added gets its ARP entry, FDB entry and route; a lease removed loses them, route first; host-gw adds or
deletes one route). Here the same: `FlannelBackend.sync()` reads the Node changes since its last pass
(netsim.agents.changes), derives the leases, and when one was added, changed or removed, programs just
that peer on every other node. A node's first sync (and any node whose own lease changed) is a full
`Flanneld.sync` (cni_plugins/flannel.py), which reads the kernel and converges it; a Node update that
leaves the lease alone (a heartbeat, a label, the failure annotation) costs a comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cni_plugins import flannel
from cni_plugins.common import NodeContext
from cni_plugins.overlay import VxlanPeer, peer_routes
from netsim import naming
from netsim.agents.changes import Batch, ChangeTracker
from netsim.kernel.api import Kernel, Route
from netsim.model.cluster import ClusterSpec
from netsim.model.errors import NetsimError

log = logging.getLogger(__name__)


@dataclass
class FlannelSyncReport:
    full: list[str] = field(default_factory=list)  # nodes programmed in full
    events: list[tuple[str, str]] = field(default_factory=list)  # ("added" | "removed", lease node)
    writes: int = 0  # kernel writes of the incremental path


class FlannelBackend:
    """flanneld on every node of one cluster (module docstring). `sync()` once per pass after Nodes changed."""

    def __init__(self, spec: ClusterSpec, kernel: Kernel, store: Any, nodes: Iterable[str]):
        self.cluster = spec.name
        self.kernel = kernel
        self.net = flannel.FlannelNetConf(network=spec.network.pod_cidr, backend=spec.network.backend)
        state_dir = naming.state_dir(spec.name)
        self.daemons = {n: flannel.Flanneld(kernel, NodeContext(spec.name, n, state_dir), self.net) for n in nodes}
        self.tracker = ChangeTracker(store, {"Node"})
        self.leases: dict[str, flannel.Lease] = {}
        self._programmed: dict[str, flannel.Lease] = {}  # node -> its own lease when last programmed in full

    def lease(self, node: Mapping[str, Any]) -> flannel.Lease | None:
        """The lease a Node stands for (flannel's kube subnet manager: spec.podCIDR, the InternalIP);
        None while it has neither, or a bad one (logged: one bad Node never stops the others). Read from
        the typed Node of the store's parse cache (netsim.model.node, lenient as the kubelet writes it)."""
        try:
            typed = self.tracker.store.decode(node)
            name, cidr, ip = typed.meta.name, typed.spec.pod_cidr, typed.status.internal_ip
            if not cidr or not ip:
                return None
            return flannel.lease_for(self.cluster, name, ip, cidr, self.net)
        except NetsimError as exc:
            log.warning("flannel: no lease for a node: %s", exc)
            return None

    def sync(self, batch: Batch | None = None) -> FlannelSyncReport:
        batch = self.tracker.poll() if batch is None else batch
        leases = {} if batch.resync else dict(self.leases)
        for (_, _, name), obj in batch.objects.items():
            lease = self.lease(obj) if obj is not None else None
            if lease is None:
                leases.pop(name, None)
            else:
                leases[name] = lease
        old, self.leases = self.leases, leases
        report = FlannelSyncReport()
        removed = [old[n] for n in sorted(old) if n not in leases or leases[n] != old[n]]
        added = [leases[n] for n in sorted(leases) if n not in old or old[n] != leases[n]]
        report.events = [("removed", le.node) for le in removed] + [("added", le.node) for le in added]
        for node, daemon in self.daemons.items():
            me = leases.get(node)
            if me is None:
                continue
            if self._programmed.get(node) != me:
                daemon.sync(leases.values())  # first sync, or its own lease moved: converge in full
                self._programmed[node] = me
                report.full.append(node)
                continue
            ns = naming.node_ns(self.cluster, node)
            for le in removed:
                if le.node != node:
                    report.writes += self._remove(ns, le)
            for le in added:
                if le.node != node:
                    report.writes += self._add(ns, le)
        return report

    def _peer(self, le: flannel.Lease) -> VxlanPeer:
        return VxlanPeer(le.node, le.public_ip, le.network_ip, le.vtep_mac, (le.subnet,))

    def _add(self, ns: str, le: flannel.Lease) -> int:
        """handleSubnetEvents, EventAdded: ARP, FDB, then the route (vxlan); one route (host-gw)."""
        k, dev = self.kernel, self.net.device
        if self.net.backend == "host-gw":
            k.route_replace(ns, Route(dst=le.subnet, via=le.public_ip, dev=self.net.uplink))
            return 1
        peer = self._peer(le)
        k.neigh_replace(ns, dev, peer.vtep_ip, peer.vtep_mac, permanent=True)
        k.fdb_replace(ns, dev, peer.vtep_mac, peer.node_ip, permanent=True)
        routes = peer_routes(dev, [peer])
        for r in routes:
            k.route_replace(ns, r)
        return 2 + len(routes)

    def _remove(self, ns: str, le: flannel.Lease) -> int:
        """handleSubnetEvents, EventRemoved: the route first (nothing may point at a neighbour going away),
        then the FDB and ARP entries."""
        k, dev = self.kernel, self.net.device
        if self.net.backend == "host-gw":
            k.route_del(ns, Route(dst=le.subnet, via=le.public_ip, dev=self.net.uplink))
            return 1
        peer = self._peer(le)
        routes = peer_routes(dev, [peer])
        for r in routes:
            k.route_del(ns, r)
        k.fdb_del(ns, dev, peer.vtep_mac, peer.node_ip)
        k.neigh_del(ns, dev, peer.vtep_ip)
        return 2 + len(routes)


__all__ = ["FlannelBackend", "FlannelSyncReport"]
