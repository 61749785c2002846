"""VXLAN overlay and route programming shared by flanneld (flannel.1) and felix (vxlan.calico).

Both upstream daemons program the same three objects per remote node (flannel `pkg/backend/vxlan/
vxlan_network.go` "1 route, 1 ARP, 1 FDB per host"; calico `felix/dataplane/linux/vxlan_mgr.go` and
`felix/vxlanfdb/vxlan_fdb.go`):

1. a PERMANENT neighbour on the VXLAN device: remote tunnel IP -> remote VTEP MAC;
2. a bridge FDB entry (NTF_SELF, permanent): remote VTEP MAC -> remote node IP (the outer destination);
3. a route `<remote prefix> via <remote tunnel IP> dev <vxlan dev> onlink`, added last so the kernel
   never has to ARP for the gateway.

The functions here compute a desired set and reconcile it against what the kernel has on the device:
objects no longer desired are removed (route first, then FDB, then neighbour), missing or changed ones are
written, and unchanged ones are left alone, so a periodic resync costs only reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from netsim.kernel.api import Kernel, Route

VXLAN_OVERHEAD = 50  # inner Ethernet 14 + outer IPv4 20 + UDP 8 + VXLAN 8 (flannel encapOverhead)


@dataclass(frozen=True)
class VxlanDevice:
    """The local VTEP: name, VNI, UDP port, underlay address and parent, MTU, MAC and its address."""

    name: str
    vni: int
    port: int
    local: str
    parent: str
    mtu: int
    mac: str
    address: str  # CIDR put on the device, e.g. "10.244.1.0/32"


@dataclass(frozen=True)
class VxlanPeer:
    """A remote VTEP and the prefixes reached through it."""

    node: str
    node_ip: str  # outer destination (FDB dst)
    vtep_ip: str  # neighbour IP and route gateway
    vtep_mac: str
    prefixes: tuple[str, ...]


def route_key(r: Route) -> tuple:
    """The fields that make two routes "the same" for reconciliation (the kernel adds proto/scope/src)."""
    return (r.dst, r.via, r.dev, r.onlink, r.kind)


def ensure_vxlan_device(kernel: Kernel, ns: str, dev: VxlanDevice) -> None:
    """Create the VTEP, or recreate it when VNI/port/local differ (as flannel does), then pin MTU, MAC, up
    and the single address; other addresses on the device are removed (flannel EnsureV4AddressOnLink)."""
    link = kernel.link_get(ns, dev.name)
    if link is not None and link.vxlan is not None:
        info = link.vxlan
        if (info.get("vni"), info.get("port"), info.get("local")) != (dev.vni, dev.port, dev.local):
            kernel.link_del(ns, dev.name)
            link = None
    elif link is not None:
        kernel.link_del(ns, dev.name)  # a non-vxlan link squatting on the name
        link = None
    if link is None:
        kernel.vxlan_add(ns, dev.name, vni=dev.vni, dev=dev.parent, local=dev.local, port=dev.port,
                         learning=False, mtu=dev.mtu, mac=dev.mac, up=True)
    elif link.mtu != dev.mtu or link.mac != dev.mac or not link.up:
        kernel.link_set(ns, dev.name, mtu=dev.mtu, mac=dev.mac, up=True)
    for ifname, cidr in kernel.addrs(ns, dev.name):
        if ifname == dev.name and cidr != dev.address:
            kernel.addr_del(ns, dev.name, cidr)
    kernel.addr_add(ns, dev.name, dev.address)


def peer_routes(dev: str, peers: Iterable[VxlanPeer]) -> list[Route]:
    return [Route(dst=p, via=peer.vtep_ip, dev=dev, onlink=True) for peer in peers for p in peer.prefixes]


def reconcile_vxlan_peers(kernel: Kernel, ns: str, dev: str, peers: Iterable[VxlanPeer]) -> int:
    """Make the device's neighbours, FDB entries and onlink routes exactly those of `peers`.

    Returns the number of kernel writes (0 when already converged).
    """
    peers = list(peers)
    want_neigh = {p.vtep_ip: p.vtep_mac for p in peers}
    want_fdb = {(p.vtep_mac, p.node_ip) for p in peers}
    want_routes = peer_routes(dev, peers)
    writes = 0
    # Removal: routes first, so nothing points at a neighbour that is going away.
    want_dsts = {r.dst for r in want_routes}
    writes += reconcile_routes(kernel, ns, [], lambda r: r.dev == dev and r.via is not None and
                               r.dst not in want_dsts)
    for f in kernel.fdbs(ns, dev):
        if f.dst and f.mac != "00:00:00:00:00:00" and (f.mac, f.dst) not in want_fdb:
            kernel.fdb_del(ns, dev, f.mac, f.dst)
            writes += 1
    have_neigh = {n.ip: n.mac for n in kernel.neighs(ns, dev) if n.permanent}
    for ip in have_neigh:
        if ip not in want_neigh:
            kernel.neigh_del(ns, dev, ip)
            writes += 1
    # Addition, per peer in flannel's order: neighbour, FDB, route.
    have_fdb = {(f.mac, f.dst) for f in kernel.fdbs(ns, dev)}
    have_routes = {route_key(r) for r in kernel.routes(ns)}
    writes += add_peers(kernel, ns, dev, peers, have_neigh, have_fdb, lambda key: key not in have_routes)
    return writes


def reconcile_routes(kernel: Kernel, ns: str, desired: Iterable[Route], owned: Callable[[Route], bool]) -> int:
    """Install `desired` routes and delete routes matching `owned` that are not desired. Returns writes."""
    desired = list(desired)
    want = {route_key(r) for r in desired}
    want_dst = {r.dst for r in desired}
    writes = 0
    current = kernel.routes(ns)
    for r in current:
        if owned(r) and route_key(r) not in want and r.dst not in want_dst:
            kernel.route_del(ns, r)
            writes += 1
    have = {route_key(r) for r in current}
    for r in desired:
        if route_key(r) not in have:
            kernel.route_replace(ns, r)
            writes += 1
    return writes


def add_peers(kernel: Kernel, ns: str, dev: str, peers: Iterable[VxlanPeer], have_neigh: dict[str, str],
              have_fdb: set[tuple[str, str]], route_missing: Callable[[tuple], bool]) -> int:
    """Program each peer's neighbour, FDB entry and routes in flannel's order, skipping a neighbour or FDB
    entry already present (`have_neigh`, `have_fdb`) and a route `route_missing` does not ask for (by
    `route_key`). Returns the kernel writes. Shared by the full reconcile (what the kernel holds) and
    calico-node's delta (what it last programmed)."""
    writes = 0
    for p in peers:
        if have_neigh.get(p.vtep_ip) != p.vtep_mac:
            kernel.neigh_replace(ns, dev, p.vtep_ip, p.vtep_mac, permanent=True)
            writes += 1
        if (p.vtep_mac, p.node_ip) not in have_fdb:
            kernel.fdb_replace(ns, dev, p.vtep_mac, p.node_ip, permanent=True)
            writes += 1
        for r in peer_routes(dev, [p]):
            if route_missing(route_key(r)):
                kernel.route_replace(ns, r)
                writes += 1
    return writes
