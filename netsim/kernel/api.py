"""The kernel interface every agent and plugin uses.

Everything is addressed by (netns name, interface name): callers never hold file descriptors or
indexes, so the same code runs against the real kernel and against the recording fake. Lookups are
targeted (one object by name), never dump-then-filter; the listing methods exist for display and tests.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


class KernelError(Exception):
    """A kernel operation failed; carries the errno when there is one."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True)
class Link:
    """An interface as the kernel reports it."""

    name: str
    index: int
    kind: str  # "veth", "bridge", "vxlan", "loopback", "dummy", ...
    mtu: int
    mac: str
    up: bool
    master: str | None = None
    peer_netns_id: int | None = None
    peer: str | None = None  # veth: the peer's name where known
    vxlan: dict | None = None  # vni, port, local, learning, dev index


@dataclass(frozen=True)
class Route:
    """A route in the main table. `kind` is "unicast" or "blackhole"; scope "link", "host" or "global"."""

    dst: str  # CIDR, "default" for 0.0.0.0/0
    via: str | None = None
    dev: str | None = None
    onlink: bool = False
    scope: str | None = None
    kind: str = "unicast"
    proto: int | None = None
    src: str | None = None


@dataclass(frozen=True)
class Neigh:
    ifname: str
    ip: str
    mac: str
    permanent: bool


@dataclass(frozen=True)
class Fdb:
    ifname: str
    mac: str
    dst: str | None
    permanent: bool


class Kernel(Protocol):
    """Operations on named network namespaces and the objects in them."""

    # --- namespaces -------------------------------------------------------------------------------
    def netns_create(self, name: str) -> None:
        """Create /run/netns/<name> (compatible with `ip netns exec`), loopback up. Fails if it exists."""

    def netns_delete(self, name: str) -> None:
        """Remove a namespace; idempotent (absent is fine)."""

    def netns_delete_many(self, names: Sequence[str]) -> None:
        """Remove many namespaces (idempotent), overlapping the kernel's waits: each unmount waits for an
        RCU grace period (namespace_unlock), ~1-5 ms on a loaded machine, serial for 10,000 pods."""

    def netns_exists(self, name: str) -> bool: ...

    def netns_list(self, prefix: str = "") -> list[str]:
        """Names under /run/netns starting with `prefix`."""

    # --- links ------------------------------------------------------------------------------------
    def veth_add(self, ns: str, ifname: str, peer_ns: str, peer_ifname: str, *, mtu: int | None = None,
                 mac: str | None = None, peer_mac: str | None = None, up: bool = True,
                 master: str | None = None, peer_ipv4_conf: Mapping[str, int] | None = None,
                 ipv4_conf: Mapping[str, int] | None = None) -> None:
        """Create a veth pair with each end created straight in its namespace (no move afterwards), both
        ends up when `up`, the `ns` end enslaved to bridge `master` when given. `peer_ipv4_conf` and
        `ipv4_conf`: IPv4 settings of the peer and of the `ns` end, as `sysctl_set(ns,
        "net.ipv4.conf.<if>.<name>", value)` would make them (`arp_notify`, `forwarding`, `proxy_arp`,
        `route_localnet`; others raise KernelError EINVAL), applied with that end's own up request rather
        than through /proc/sys, whose path lookup costs time in proportion to the namespaces on the
        machine."""

    def neigh_parms_set(self, ns: str, ifname: str, *, proxy_delay_ms: int) -> None:
        """The interface's ARP proxy delay, as `sysctl_set(ns, "net.ipv4.neigh.<if>.proxy_delay", v)` makes
        it (v in USER_HZ ticks, 1/100 s), in one netlink request instead of a /proc/sys write."""

    def bridge_add(self, ns: str, ifname: str, *, mtu: int | None = None, mac: str | None = None,
                   up: bool = True) -> None: ...

    def vxlan_add(self, ns: str, ifname: str, *, vni: int, dev: str, local: str, port: int,
                  learning: bool = False, mtu: int | None = None, mac: str | None = None,
                  up: bool = True) -> None: ...

    def link_set(self, ns: str, ifname: str, *, up: bool | None = None, master: str | None = None,
                 nomaster: bool = False, mtu: int | None = None, mac: str | None = None) -> None: ...

    def link_get(self, ns: str, ifname: str) -> Link | None:
        """The link named `ifname`, or None."""

    def link_del(self, ns: str, ifname: str) -> bool:
        """Delete a link; returns False when it was not there."""

    def links(self, ns: str) -> list[Link]: ...

    def brport_set(self, ns: str, ifname: str, *, hairpin: bool) -> None:
        """Bridge-port options of an enslaved interface."""

    # --- addresses --------------------------------------------------------------------------------
    def addr_add(self, ns: str, ifname: str, cidr: str) -> None:
        """Add "a.b.c.d/len"; adding an address that is already there is not an error."""

    def addr_del(self, ns: str, ifname: str, cidr: str) -> None: ...

    def addrs(self, ns: str, ifname: str | None = None) -> list[tuple[str, str]]:
        """(ifname, cidr) pairs of IPv4 addresses."""

    # --- routes, neighbours, fdb ------------------------------------------------------------------
    def route_replace(self, ns: str, route: Route) -> None: ...

    def route_add(self, ns: str, route: Route) -> None:
        """Add a route; KernelError with errno EEXIST when the destination already has one (no dump needed
        to detect a conflict, as calico's CNI plugin relies on)."""

    def route_del(self, ns: str, route: Route) -> bool: ...

    def routes(self, ns: str) -> list[Route]:
        """IPv4 routes of the main table."""

    def neigh_replace(self, ns: str, ifname: str, ip: str, mac: str, *, permanent: bool = True) -> None: ...

    def neigh_del(self, ns: str, ifname: str, ip: str) -> bool: ...

    def neighs(self, ns: str, ifname: str | None = None) -> list[Neigh]: ...

    def neigh_proxy_add(self, ns: str, ifname: str, ip: str) -> None:
        """A proxy neighbour entry (`ip neigh add proxy IP dev IF`): answer ARP for `ip` on `ifname`, as a
        MetalLB L2 speaker does for a LoadBalancer IP. Idempotent."""

    def neigh_proxy_del(self, ns: str, ifname: str, ip: str) -> bool: ...

    def fdb_replace(self, ns: str, ifname: str, mac: str, dst: str, *, permanent: bool = True) -> None:
        """A bridge FDB entry on a VXLAN device (NTF_SELF): `mac` is reached at remote VTEP `dst`."""

    def fdb_append(self, ns: str, ifname: str, mac: str, dst: str) -> None:
        """Add remote VTEP `dst` to `mac`'s entry on a VXLAN device (`bridge fdb append`, NLM_F_APPEND):
        with the all-zeros MAC, one more destination for flooded frames (head-end replication, the
        kernel's Documentation/networking/vxlan.rst). Idempotent."""

    def fdb_del(self, ns: str, ifname: str, mac: str, dst: str) -> bool: ...

    def fdbs(self, ns: str, ifname: str) -> list[Fdb]: ...

    # --- sysctls ----------------------------------------------------------------------------------
    def sysctl_set(self, ns: str, key: str, value: str | int) -> None:
        """Set a per-netns sysctl, `key` dotted ("net.ipv4.ip_forward")."""

    def sysctl_get(self, ns: str, key: str) -> str: ...

    # --- processes and payload appliers -----------------------------------------------------------
    def run(self, ns: str, argv: Sequence[str], *, input: str | bytes | None = None, check: bool = True,
            timeout: float | None = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run a program inside `ns` (no `ip netns exec` fork chain)."""

    def call_in(self, ns: str, fn: Callable[[], T]) -> T:
        """Call `fn` on a thread that is inside `ns`, e.g. to open sockets that live there."""

    def batch(self, fn: Callable[[], T]) -> T:
        """Call `fn`, whose kernel calls form one unit of work (a CNI ADD, a sandbox): an implementation
        that serialises kernel access may run it whole on its own thread, so the calls inside cost no
        hand-off each. `fn` must not wait on other threads that use this kernel."""

    def iptables_restore(self, ns: str, payload: str, *, noflush: bool = True, counters: bool = False,
                         timeout: float | None = 30) -> None:
        """Load an iptables-restore payload into `ns` in one call (failing after `timeout` seconds)."""

    def ipset_restore(self, ns: str, payload: str) -> None:
        """Load an `ipset restore` payload into `ns` in one call."""

    def nft_apply(self, ns: str, payload: str) -> None:
        """Load an `nft -f -` payload into `ns` in one call."""
