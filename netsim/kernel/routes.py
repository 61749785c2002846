"""Route selection over a namespace's main table, as the kernel's FIB lookup picks (`ip route get`):
longest-prefix match, no policy routing. The one route lookup of the packet walkers (trace's simulation
and cluster view, the topology graph's forward_hops)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from netsim.kernel.api import Route


def prefix_len(dst: str) -> int | None:
    """The prefix length of a route destination (`default` is /0); None when it is not a network."""
    if dst == "default":
        return 0
    try:
        return ipaddress.ip_network(dst, strict=False).prefixlen
    except ValueError:
        return None


def covers(dst: str, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Does the route destination `dst` (a CIDR or `default`) contain `ip`?"""
    if dst == "default":
        return True
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return False


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
