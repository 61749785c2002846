"""calico-node's route programming by difference: what changed between two desired states, and nothing else.

felix does not re-read the kernel for every update: its managers take updates (`OnUpdate`), mark what is
dirty, and `CompleteDeferredWork` programs only that (`felix/dataplane/linux/vxlan_mgr.go`: a block or a
VTEP update recomputes that node's routes; `felix/vxlanfdb/vxlan_fdb.go` adds and removes single
neighbour/FDB entries; `felix/routetable/route_table.go` keeps its own view of the kernel's routes and
writes only the routes that differ). The kernel is re-read in full only at start and every
`RouteRefreshInterval` (90 s by default, `calico/reference/felix/configuration.md`) to repair what another
process broke. `CalicoNodeDaemon.sync` does the same: a full reconcile (overlay.reconcile_*) on the first sync
and then at most every ROUTE_REFRESH_INTERVAL, and in between `apply_delta` from the state it last
programmed to the new one. Given a kernel holding the old state, the result is what the full reconcile would
leave: same routes, neighbours and FDB entries, written in the same order (removals first: routes, FDB,
neighbours; then per peer neighbour, FDB, route).
"""

from __future__ import annotations

from collections.abc import Iterable

from cni_plugins.overlay import VxlanPeer, add_peers, peer_routes, route_key
from netsim.kernel.api import Kernel, Route

ROUTE_REFRESH_INTERVAL = 90.0  # seconds; felix RouteRefreshInterval's default


def _routes_delta(kernel: Kernel, ns: str, old: Iterable[Route], new: Iterable[Route]) -> tuple[int, list[Route]]:
    """Delete the old routes whose destination is no longer wanted; return (writes, routes to add): the
    new routes the old state did not already hold (a changed gateway is replaced in place, as the full
    reconcile's route_replace does)."""
    old, new = list(old), list(new)
    want_dsts = {r.dst for r in new}
    writes = 0
    for r in old:
        if r.dst not in want_dsts:
            kernel.route_del(ns, r)
            writes += 1
    have = {route_key(r) for r in old}
    return writes, [r for r in new if route_key(r) not in have]


def apply_routes_delta(kernel: Kernel, ns: str, old: Iterable[Route], new: Iterable[Route]) -> int:
    """Routes from `old` to `new` (blackholes, BIRD's direct routes). Returns the kernel writes."""
    writes, add = _routes_delta(kernel, ns, old, new)
    for r in add:
        kernel.route_replace(ns, r)
    return writes + len(add)


def apply_peers_delta(kernel: Kernel, ns: str, dev: str, old: Iterable[VxlanPeer],
                      new: Iterable[VxlanPeer]) -> int:
    """VXLAN peers from `old` to `new` on `dev`: a claimed block is one route on each other node, a node
    that joins is its neighbour, FDB entry and routes. Returns the kernel writes."""
    old, new = list(old), list(new)
    writes, add_routes = _routes_delta(kernel, ns, peer_routes(dev, old), peer_routes(dev, new))
    old_fdb = {(p.vtep_mac, p.node_ip) for p in old}
    new_fdb = {(p.vtep_mac, p.node_ip) for p in new}
    for mac, dst in sorted(old_fdb - new_fdb):
        kernel.fdb_del(ns, dev, mac, dst)
        writes += 1
    old_neigh = {p.vtep_ip: p.vtep_mac for p in old}
    new_neigh = {p.vtep_ip: p.vtep_mac for p in new}
    for ip in old_neigh:
        if ip not in new_neigh:
            kernel.neigh_del(ns, dev, ip)
            writes += 1
    pending = {route_key(r) for r in add_routes}
    return writes + add_peers(kernel, ns, dev, new, old_neigh, old_fdb, lambda key: key in pending)


__all__ = ["ROUTE_REFRESH_INTERVAL", "apply_peers_delta", "apply_routes_delta"]
