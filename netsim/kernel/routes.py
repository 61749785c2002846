"""Route selection over a namespace's main table, as the kernel's FIB lookup picks (`ip route get`):
longest-prefix match, no policy routing; then the parts of the forwarding decision.

The one route lookup and next-hop resolution, called by the one packet walker (`netsim.trace.simulate.walker`,
which trace's simulation, its reply walk and the topology graph's paths share): `next_hop` picks
the route, its out device and the neighbour the frame goes to; `vxlan_peer` resolves a next hop on a VXLAN
device to the VTEP's MAC (the PERMANENT neighbour entry) and the remote node's IP (the FDB entry for that MAC),
as flannel (`pkg/backend/vxlan/vxlan_network.go`, handleSubnetEvents) and calico felix (`vxlan_mgr.go`)
program them and as the kernel's vxlan driver looks them up (`vxlan_xmit`: neighbour, then FDB by MAC)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from netsim.kernel.api import Fdb, Neigh, Route


@functools.lru_cache(maxsize=65536)
def _network(dst: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A route destination parsed once (a trace looks up the same tables hop after hop)."""
    try:
        return ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return None


def prefix_len(dst: str) -> int | None:
    """The prefix length of a route destination (`default` is /0); None when it is not a network."""
    if dst == "default":
        return 0
    net = _network(dst)
    return net.prefixlen if net is not None else None


def covers(dst: str, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Does the route destination `dst` (a CIDR or `default`) contain `ip`?"""
    if dst == "default":
        return True
    net = _network(dst)
    if net is None:
        return False
    try:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    except ValueError:
        return False
    return addr.version == net.version and addr in net


def lookup_route(routes: Iterable[Route], ip: str) -> Route | None:
    """The route the kernel would pick for `ip`: the longest prefix containing it, the first of equals."""
    addr = ipaddress.ip_address(ip)
    best: tuple[int, Route] | None = None
    for r in routes:
        if not covers(r.dst, addr):
            continue
        plen = prefix_len(r.dst) or 0
        if best is None or plen > best[0]:
            best = (plen, r)
    return best[1] if best else None


@dataclass(frozen=True)
class NextHop:
    """Where a namespace sends a packet for `ip`: the route it picked (None: no route), the out device, and
    the address whose owner on that device's segment receives the frame (the gateway, or `ip` itself when
    the route is directly connected)."""

    route: Route | None
    dev: str | None
    nexthop: str

    @property
    def forwards(self) -> bool:
        """A unicast route: the kernel sends the packet on (a blackhole/unreachable/prohibit route drops it)."""
        return self.route is not None and self.route.kind == "unicast"


def gateway_dev(routes: Iterable[Route], via: str | None) -> str | None:
    """The device a gateway is reached through when a route names only `via`: the directly connected route
    covering it (the kernel resolves the nexthop's device the same way, fib_check_nh)."""
    if via is None:
        return None
    r = lookup_route([x for x in routes if x.via is None and x.dev], via)
    return r.dev if r else None


def next_hop(routes: Iterable[Route], ip: str) -> NextHop:
    """The forwarding decision for a packet to `ip` over `routes` (one namespace's main table)."""
    routes = list(routes)
    r = lookup_route(routes, ip)
    if r is None:
        return NextHop(None, None, ip)
    return NextHop(r, r.dev or gateway_dev(routes, r.via), r.via or ip)


def vxlan_peer(neighs: Iterable[Neigh], fdbs: Iterable[Fdb], ifname: str,
               nexthop: str) -> tuple[Neigh | None, Fdb | None]:
    """The neighbour entry of `nexthop` on VXLAN device `ifname` (the VTEP's MAC) and the FDB entry of that
    MAC (the outer destination, the remote node's IP); either None when missing. MACs compare
    case-insensitively: they are six bytes to the kernel, whatever case a reader printed them in."""
    neigh = next((n for n in neighs if n.ifname == ifname and n.ip == nexthop), None)
    if neigh is None or not neigh.mac:
        return neigh, None
    mac = neigh.mac.lower()
    fdb = next((f for f in fdbs if f.ifname == ifname and (f.mac or "").lower() == mac and f.dst), None)
    return neigh, fdb
