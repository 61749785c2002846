"""A recording fake of the kernel for unit tests without root.

It keeps an in-memory model of namespaces and the objects in them, enforces the same preconditions the
kernel does (a link needs its namespace; names are unique per namespace; a route's device must exist),
and logs every call in `calls` so tests can assert on what an agent or plugin asked for, and in what order.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from netsim.kernel.api import Fdb, KernelError, Link, Neigh, Route

# the IPv4 settings a link request may carry (netsim.kernel.fastnl.IPV4_DEVCONF)
IPV4_LINK_CONF = ("arp_notify", "forwarding", "proxy_arp", "route_localnet")

T = TypeVar("T")

EEXIST, ENOENT, ENODEV = 17, 2, 19


@dataclass
class _Ns:
    links: dict[str, Link] = field(default_factory=dict)
    addrs: list[tuple[str, str]] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    neighs: list[Neigh] = field(default_factory=list)
    fdbs: list[Fdb] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    hairpin: dict[str, bool] = field(default_factory=dict)
    payloads: list[tuple[str, str]] = field(default_factory=list)  # (tool, payload)
    proxy_neighs: set[tuple[str, str]] = field(default_factory=set)  # (ifname, ip)


class FakeKernel:
    """In-memory Kernel. `calls` records (method, args) in order."""

    def __init__(self) -> None:
        self.ns: dict[str, _Ns] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.run_results: dict[str, subprocess.CompletedProcess] = {}
        self._next_index = 100
        self._next_mac = 1

    # -- helpers ---------------------------------------------------------------------------------
    def _rec(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def _get(self, ns: str) -> _Ns:
        if ns not in self.ns:
            raise KernelError(f"netns {ns} does not exist", ENOENT)
        return self.ns[ns]

    def _new_link(self, ns: str, name: str, kind: str, mtu: int | None, mac: str | None, up: bool,
                  **extra: Any) -> Link:
        state = self._get(ns)
        if name in state.links:
            raise KernelError(f"{ns}: link {name} exists", EEXIST)
        if len(name) > 15:
            raise KernelError(f"{ns}: interface name {name!r} longer than 15 characters", 22)
        self._next_index += 1
        if mac is None:
            n = self._next_mac
            mac = f"02:00:00:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"
            self._next_mac += 1
        link = Link(name=name, index=self._next_index, kind=kind, mtu=mtu or 1500, mac=mac, up=up, **extra)
        state.links[name] = link
        return link

    def _link(self, ns: str, ifname: str) -> Link:
        link = self._get(ns).links.get(ifname)
        if link is None:
            raise KernelError(f"{ns}: no link {ifname}", ENODEV)
        return link

    # -- namespaces ------------------------------------------------------------------------------
    def netns_create(self, name: str) -> None:
        self._rec("netns_create", name)
        if name in self.ns:
            raise KernelError(f"netns {name} exists", EEXIST)
        self.ns[name] = _Ns()
        self.ns[name].links["lo"] = Link("lo", 1, "loopback", 65536, "00:00:00:00:00:00", True)

    def netns_delete(self, name: str) -> None:
        self._rec("netns_delete", name)
        state = self.ns.pop(name, None)
        if state is None:
            return
        # veth peers in other namespaces disappear with their partner, as in the kernel.
        for other in self.ns.values():
            gone = [n for n, lk in other.links.items() if lk.kind == "veth" and lk.peer_netns_id == id(state)]
            for n in gone:
                self._forget_link(other, n)

    def netns_delete_many(self, names: Sequence[str]) -> None:
        for n in names:
            self.netns_delete(n)

    def netns_exists(self, name: str) -> bool:
        return name in self.ns

    def netns_list(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.ns if n.startswith(prefix))

    # -- links -----------------------------------------------------------------------------------
    def veth_add(self, ns: str, ifname: str, peer_ns: str, peer_ifname: str, *, mtu: int | None = None,
                 mac: str | None = None, peer_mac: str | None = None, up: bool = True,
                 master: str | None = None, peer_ipv4_conf: Mapping[str, int] | None = None,
                 ipv4_conf: Mapping[str, int] | None = None) -> None:
        self._rec("veth_add", ns, ifname, peer_ns, peer_ifname, mtu)
        unknown = sorted((set(peer_ipv4_conf or {}) | set(ipv4_conf or {})) - set(IPV4_LINK_CONF))
        if unknown:
            raise KernelError(f"IPv4 settings {', '.join(unknown)} cannot be set with a link request", 22)
        self._get(peer_ns)
        if peer_ifname in self.ns[peer_ns].links:
            raise KernelError(f"{peer_ns}: link {peer_ifname} exists", EEXIST)
        if master is not None and self._link(ns, master).kind != "bridge":
            raise KernelError(f"{ns}: {master} is not a bridge", 22)
        self._new_link(ns, ifname, "veth", mtu, mac, up, peer_netns_id=id(self.ns[peer_ns]), peer=peer_ifname,
                       master=master)
        self._new_link(peer_ns, peer_ifname, "veth", mtu, peer_mac, up, peer_netns_id=id(self.ns[ns]),
                       peer=ifname)
        for key, value in (peer_ipv4_conf or {}).items():
            self.ns[peer_ns].sysctls[f"net.ipv4.conf.{peer_ifname}.{key}"] = str(value)
        for key, value in (ipv4_conf or {}).items():
            self.ns[ns].sysctls[f"net.ipv4.conf.{ifname}.{key}"] = str(value)

    def neigh_parms_set(self, ns: str, ifname: str, *, proxy_delay_ms: int) -> None:
        self._rec("neigh_parms_set", ns, ifname, proxy_delay_ms)
        self._link(ns, ifname)
        self._get(ns).sysctls[f"net.ipv4.neigh.{ifname}.proxy_delay"] = str(proxy_delay_ms // 10)

    def bridge_add(self, ns: str, ifname: str, *, mtu: int | None = None, mac: str | None = None,
                   up: bool = True) -> None:
        self._rec("bridge_add", ns, ifname, mtu)
        self._new_link(ns, ifname, "bridge", mtu, mac, up)

    def vxlan_add(self, ns: str, ifname: str, *, vni: int, dev: str, local: str, port: int,
                  learning: bool = False, mtu: int | None = None, mac: str | None = None,
                  up: bool = True) -> None:
        self._rec("vxlan_add", ns, ifname, vni, dev, local, port, learning, mtu)
        parent = self._link(ns, dev)
        self._new_link(ns, ifname, "vxlan", mtu, mac, up,
                       vxlan={"vni": vni, "port": port, "local": local, "learning": learning,
                              "dev": parent.index})

    def link_set(self, ns: str, ifname: str, *, up: bool | None = None, master: str | None = None,
                 nomaster: bool = False, mtu: int | None = None, mac: str | None = None) -> None:
        self._rec("link_set", ns, ifname, up, master, nomaster, mtu, mac)
        link = self._link(ns, ifname)
        changes: dict[str, Any] = {}
        if up is not None:
            changes["up"] = up
        if master is not None:
            if self._link(ns, master).kind != "bridge":
                raise KernelError(f"{ns}: {master} is not a bridge", 22)
            changes["master"] = master
        if nomaster:
            changes["master"] = None
        if mtu is not None:
            changes["mtu"] = mtu
        if mac is not None:
            changes["mac"] = mac
        self.ns[ns].links[ifname] = replace(link, **changes)

    def link_get(self, ns: str, ifname: str) -> Link | None:
        self._rec("link_get", ns, ifname)
        return self._get(ns).links.get(ifname)

    def link_del(self, ns: str, ifname: str) -> bool:
        self._rec("link_del", ns, ifname)
        state = self._get(ns)
        link = self._forget_link(state, ifname)
        if link is None:
            return False
        if link.kind == "veth" and link.peer:
            for other in self.ns.values():
                if id(other) == link.peer_netns_id:
                    self._forget_link(other, link.peer)
        return True

    @staticmethod
    def _forget_link(state: _Ns, ifname: str) -> Link | None:
        """Drop a link and everything that hangs off it, as the kernel does on link deletion."""
        link = state.links.pop(ifname, None)
        if link is not None:
            state.addrs = [a for a in state.addrs if a[0] != ifname]
            state.routes = [r for r in state.routes if r.dev != ifname]
            state.neighs = [n for n in state.neighs if n.ifname != ifname]
            state.fdbs = [f for f in state.fdbs if f.ifname != ifname]
        return link

    def links(self, ns: str) -> list[Link]:
        return list(self._get(ns).links.values())

    def brport_set(self, ns: str, ifname: str, *, hairpin: bool) -> None:
        self._rec("brport_set", ns, ifname, hairpin)
        if not self._link(ns, ifname).master:
            raise KernelError(f"{ns}: {ifname} is not a bridge port", 22)
        self.ns[ns].hairpin[ifname] = hairpin

    # -- addresses -------------------------------------------------------------------------------
    def addr_add(self, ns: str, ifname: str, cidr: str) -> None:
        self._rec("addr_add", ns, ifname, cidr)
        self._link(ns, ifname)
        ipaddress.ip_interface(cidr)
        if (ifname, cidr) not in self.ns[ns].addrs:
            self.ns[ns].addrs.append((ifname, cidr))

    def addr_del(self, ns: str, ifname: str, cidr: str) -> None:
        self._rec("addr_del", ns, ifname, cidr)
        self._get(ns).addrs = [a for a in self.ns[ns].addrs if a != (ifname, cidr)]

    def addrs(self, ns: str, ifname: str | None = None) -> list[tuple[str, str]]:
        return [a for a in self._get(ns).addrs if ifname is None or a[0] == ifname]

    # -- routes, neighbours, fdb -----------------------------------------------------------------
    def route_replace(self, ns: str, route: Route) -> None:
        self._rec("route_replace", ns, route)
        state = self._get(ns)
        if route.dev is not None:
            self._link(ns, route.dev)
        state.routes = [r for r in state.routes if r.dst != route.dst] + [route]

    def route_add(self, ns: str, route: Route) -> None:
        self._rec("route_add", ns, route)
        state = self._get(ns)
        if any(r.dst == route.dst for r in state.routes):
            raise KernelError(f"{ns}: route to {route.dst} exists", EEXIST)
        if route.dev is not None:
            self._link(ns, route.dev)
        state.routes.append(route)

    def route_del(self, ns: str, route: Route) -> bool:
        self._rec("route_del", ns, route)
        state = self._get(ns)
        before = len(state.routes)
        state.routes = [r for r in state.routes if r.dst != route.dst]
        return len(state.routes) != before

    def routes(self, ns: str) -> list[Route]:
        return list(self._get(ns).routes)

    def neigh_replace(self, ns: str, ifname: str, ip: str, mac: str, *, permanent: bool = True) -> None:
        self._rec("neigh_replace", ns, ifname, ip, mac, permanent)
        self._link(ns, ifname)
        state = self.ns[ns]
        state.neighs = [n for n in state.neighs if (n.ifname, n.ip) != (ifname, ip)]
        state.neighs.append(Neigh(ifname, ip, mac, permanent))

    def neigh_del(self, ns: str, ifname: str, ip: str) -> bool:
        self._rec("neigh_del", ns, ifname, ip)
        state = self._get(ns)
        before = len(state.neighs)
        state.neighs = [n for n in state.neighs if (n.ifname, n.ip) != (ifname, ip)]
        return len(state.neighs) != before

    def neighs(self, ns: str, ifname: str | None = None) -> list[Neigh]:
        return [n for n in self._get(ns).neighs if ifname is None or n.ifname == ifname]

    def neigh_proxy_add(self, ns: str, ifname: str, ip: str) -> None:
        self._rec("neigh_proxy_add", ns, ifname, ip)
        self._link(ns, ifname)
        self.ns[ns].proxy_neighs.add((ifname, ip))

    def neigh_proxy_del(self, ns: str, ifname: str, ip: str) -> bool:
        self._rec("neigh_proxy_del", ns, ifname, ip)
        state = self._get(ns)
        if (ifname, ip) not in state.proxy_neighs:
            return False
        state.proxy_neighs.discard((ifname, ip))
        return True

    def fdb_replace(self, ns: str, ifname: str, mac: str, dst: str, *, permanent: bool = True) -> None:
        self._rec("fdb_replace", ns, ifname, mac, dst, permanent)
        self._link(ns, ifname)
        state = self.ns[ns]
        state.fdbs = [f for f in state.fdbs if (f.ifname, f.mac, f.dst) != (ifname, mac, dst)]
        state.fdbs.append(Fdb(ifname, mac, dst, permanent))

    def fdb_append(self, ns: str, ifname: str, mac: str, dst: str) -> None:
        self._rec("fdb_append", ns, ifname, mac, dst)
        self._link(ns, ifname)
        state = self.ns[ns]
        if not any((f.ifname, f.mac, f.dst) == (ifname, mac, dst) for f in state.fdbs):
            state.fdbs.append(Fdb(ifname, mac, dst, True))

    def fdb_del(self, ns: str, ifname: str, mac: str, dst: str) -> bool:
        self._rec("fdb_del", ns, ifname, mac, dst)
        state = self._get(ns)
        before = len(state.fdbs)
        state.fdbs = [f for f in state.fdbs if (f.ifname, f.mac, f.dst) != (ifname, mac, dst)]
        return len(state.fdbs) != before

    def fdbs(self, ns: str, ifname: str) -> list[Fdb]:
        return [f for f in self._get(ns).fdbs if f.ifname == ifname]

    # -- sysctls ---------------------------------------------------------------------------------
    def sysctl_set(self, ns: str, key: str, value: str | int) -> None:
        self._rec("sysctl_set", ns, key, str(value))
        self._get(ns).sysctls[key] = str(value)

    def sysctl_get(self, ns: str, key: str) -> str:
        return self._get(ns).sysctls.get(key, "0")

    # -- processes and appliers ------------------------------------------------------------------
    def run(self, ns: str, argv: Sequence[str], *, input: str | bytes | None = None, check: bool = True,
            timeout: float | None = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        self._rec("run", ns, tuple(argv))
        self._get(ns)
        return self.run_results.get(argv[0], subprocess.CompletedProcess(list(argv), 0, "", ""))

    def batch(self, fn: Callable[[], T]) -> T:
        return fn()

    def call_in(self, ns: str, fn: Callable[[], T]) -> T:
        self._rec("call_in", ns)
        self._get(ns)
        return fn()

    def iptables_restore(self, ns: str, payload: str, *, noflush: bool = True, counters: bool = False,
                         timeout: float | None = 30) -> None:
        self._rec("iptables_restore", ns, noflush)
        self._get(ns).payloads.append(("iptables-restore", payload))

    def ipset_restore(self, ns: str, payload: str) -> None:
        self._rec("ipset_restore", ns)
        self._get(ns).payloads.append(("ipset", payload))

    def nft_apply(self, ns: str, payload: str) -> None:
        self._rec("nft_apply", ns)
        self._get(ns).payloads.append(("nft", payload))

    def close(self) -> None:
        """Nothing to release; present so callers can treat both kernels alike."""
