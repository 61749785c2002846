"""Allocators for the addresses and ports a Service gets: ClusterIPs, NodePorts (and health check node
ports, which share the NodePort range, as in the apiserver), LoadBalancer IPs.

The apiserver picks free values at random (pkg/registry/core/service/ipallocator, portallocator); netsim
hands out the lowest free value so runs and tests are reproducible. A requested value is honoured or
rejected with a SpecError naming the object and field, like the apiserver's "provided IP is already
allocated" / "provided port is not in the valid range" errors. Allocation is keyed by an owner string
(e.g. "Service default/web"), so re-applying an unchanged object gets its own value back.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from netsim.model.errors import Source, SpecError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Pool:
    """Owner-tracked allocation over an ordered candidate space.

    Kept cheap at ten thousand Services: an owner's values are indexed (re-applying an object finds its value
    without a walk over every allocation), and automatic allocation resumes its scan at a hint below which
    every candidate is known to be taken (any release resets it), so handing out N values costs O(N), not
    O(N^2) as a scan from the first candidate each time did."""

    def __init__(self) -> None:
        self._owner_of: dict[str, str] = {}  # value -> owner
        self._values_of: dict[str, dict[str, None]] = {}  # owner -> its values, in allocation order
        self._hint = 0  # automatic allocation: every candidate below this one is taken (or reserved)

    def owner(self, value: str) -> str | None:
        return self._owner_of.get(value)

    def is_allocated(self, value: str) -> bool:
        return value in self._owner_of

    def _take(self, value: str, owner: str) -> None:
        prev = self._owner_of.get(value)
        if prev is not None and prev != owner:
            self._values_of.get(prev, {}).pop(value, None)
        self._owner_of[value] = owner
        self._values_of.setdefault(owner, {})[value] = None

    def _held_by(self, owner: str) -> str | None:
        """The first value `owner` holds (re-applying an unchanged object gets its own value back)."""
        values = self._values_of.get(owner)
        return next(iter(values)) if values else None

    def release(self, value: str) -> None:
        holder = self._owner_of.pop(str(value), None)
        if holder is not None:
            self._values_of.get(holder, {}).pop(str(value), None)
            self._hint = 0

    def release_owner(self, owner: str) -> list[str]:
        """Free everything `owner` holds (the object was deleted); returns what was freed."""
        freed = list(self._values_of.pop(owner, {}))
        for v in freed:
            del self._owner_of[v]
        if freed:
            self._hint = 0
        return freed

    def allocated(self) -> dict[str, str]:
        return dict(self._owner_of)


class ClusterIPAllocator(_Pool):
    """ClusterIPs from the service CIDR. The network and broadcast addresses are never used; `reserved`
    addresses (by default the 10th, kube-dns' 10.96.0.10 in 10.96.0.0/12) are skipped by automatic
    allocation but can be requested explicitly."""

    def __init__(self, cidr: str = "10.96.0.0/12", *, reserved: Iterable[str] | None = None,
                 dns_offset: int | None = 10):
        super().__init__()
        self.network = ipaddress.ip_network(cidr, strict=False)
        res = {ipaddress.ip_address(r) for r in (reserved or ())}
        if reserved is None and dns_offset is not None and self.network.num_addresses > dns_offset + 1:
            res.add(self.network.network_address + dns_offset)
        self.reserved = res

    @property
    def dns_ip(self) -> str:
        return str(self.network.network_address + 10)

    def _usable(self, addr: IPAddress) -> bool:
        if addr not in self.network:
            return False
        edges = (self.network.network_address, self.network.broadcast_address)
        return not (self.network.num_addresses > 2 and addr in edges)

    def allocate(self, requested: str | None = None, *, owner: str, source: Source | None = None,
                 obj: str | None = None, field: str = "spec.clusterIP") -> str:
        """Return `requested` if it is free (or already this owner's), else the lowest free address."""
        obj = obj or owner
        if requested:
            try:
                addr = ipaddress.ip_address(requested)
            except ValueError:
                raise SpecError(f"{requested!r} is not a valid IP address", source=source, obj=obj,
                                field=field) from None
            if not self._usable(addr):
                raise SpecError(f"provided IP {requested} is not in the valid range: the range of valid IPs "
                                f"is {self.network}", source=source, obj=obj, field=field)
            key = str(addr)
            holder = self.owner(key)
            if holder is not None and holder != owner:
                raise SpecError(f"provided IP {key} is already allocated (to {holder})", source=source,
                                obj=obj, field=field)
            self._take(key, owner)
            return key
        held = self._held_by(owner)
        if held is not None:
            return held
        first = max(int(self.network.network_address) + 1, self._hint)
        for i in range(first, int(self.network.broadcast_address)):
            addr = ipaddress.ip_address(i)
            key = str(addr)
            if addr in self.reserved or key in self._owner_of:
                continue
            self._take(key, owner)
            self._hint = i + 1
            return key
        raise SpecError(f"no ClusterIP left in {self.network}", source=source, obj=obj, field=field)


class PortAllocator(_Pool):
    """NodePorts from a range (default 30000-32767). Health check node ports come from the same range,
    so use one allocator for both (owner strings keep them apart, e.g. "Service ns/x healthCheck")."""

    def __init__(self, low: int = 30000, high: int = 32767):
        super().__init__()
        if not 0 < low <= high <= 65535:
            raise ValueError(f"bad port range {low}-{high}")
        self.low, self.high = low, high

    def allocate(self, requested: int | None = None, *, owner: str, source: Source | None = None,
                 obj: str | None = None, field: str = "spec.ports[0].nodePort") -> int:
        obj = obj or owner
        if requested:
            if not self.low <= requested <= self.high:
                raise SpecError(f"provided port {requested} is not in the valid range. The range of valid "
                                f"ports is {self.low}-{self.high}", source=source, obj=obj, field=field)
            holder = self.owner(str(requested))
            if holder is not None and holder != owner:
                raise SpecError(f"provided port {requested} is already allocated (to {holder})",
                                source=source, obj=obj, field=field)
            self._take(str(requested), owner)
            return requested
        for port in range(max(self.low, self._hint), self.high + 1):
            if str(port) not in self._owner_of:
                self._take(str(port), owner)
                self._hint = port + 1
                return port
        raise SpecError(f"no port left in {self.low}-{self.high}", source=source, obj=obj, field=field)

    def release(self, value: int | str) -> None:  # type: ignore[override]
        super().release(str(value))


class NodePortAllocator(PortAllocator):
    """The NodePort range allocator (apiserver --service-node-port-range, default 30000-32767)."""


class LoadBalancerIPAllocator(_Pool):
    """LoadBalancer ingress IPs from a pool, like MetalLB's address pools: a list of CIDRs
    ("203.0.113.0/28", every address usable) or ranges ("203.0.113.10-203.0.113.20")."""

    def __init__(self, pools: Iterable[str] = ("203.0.113.200-203.0.113.250",)):
        super().__init__()
        self._ranges: list[tuple[int, int]] = []
        for p in pools:
            p = p.strip()
            if "-" in p:
                a, b = (ipaddress.ip_address(x.strip()) for x in p.split("-", 1))
                lo, hi = int(a), int(b)
            else:
                net = ipaddress.ip_network(p, strict=False)
                lo, hi = int(net.network_address), int(net.broadcast_address)
            if lo > hi:
                raise ValueError(f"empty LoadBalancer pool {p!r}")
            self._ranges.append((lo, hi))
        self.pools = tuple(pools)

    def contains(self, ip: str) -> bool:
        v = int(ipaddress.ip_address(ip))
        return any(lo <= v <= hi for lo, hi in self._ranges)

    def allocate(self, requested: str | None = None, *, owner: str, source: Source | None = None,
                 obj: str | None = None, field: str = "spec.loadBalancerIP") -> str:
        obj = obj or owner
        if requested:
            try:
                key = str(ipaddress.ip_address(requested))
            except ValueError:
                raise SpecError(f"{requested!r} is not a valid IP address", source=source, obj=obj,
                                field=field) from None
            if not self.contains(key):
                raise SpecError(f"requested IP {key} is not in any LoadBalancer pool ({', '.join(self.pools)})",
                                source=source, obj=obj, field=field)
            holder = self.owner(key)
            if holder is not None and holder != owner:
                raise SpecError(f"requested IP {key} is already allocated (to {holder})", source=source,
                                obj=obj, field=field)
            self._take(key, owner)
            return key
        held = self._held_by(owner)
        if held is not None:
            return held
        for lo, hi in sorted(self._ranges):
            for v in range(lo, hi + 1):
                key = str(ipaddress.ip_address(v))
                if key not in self._owner_of:
                    self._take(key, owner)
                    return key
        raise SpecError(f"no LoadBalancer IP left in pools {', '.join(self.pools)}", source=source, obj=obj,
                        field=field)
