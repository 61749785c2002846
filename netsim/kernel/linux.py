"""The real kernel: netlink through pyroute2, namespaces in process, payloads through the standard tools.

One kernel thread runs every operation. It owns the netlink sockets (pyroute2 keeps its transport per
thread), moves itself into a namespace only to open a socket or start a process there, and comes back at
once. Callers on other threads hand work to it and wait; calls made from the kernel thread itself run
inline. Sockets are kept per namespace (least recently used ones are closed past `max_sockets`, so a node
with a thousand pods does not hold a thousand sockets and event loops open).
"""

from __future__ import annotations

import errno
import os
import queue
import resource
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netsim import fanout
from netsim.kernel import netns
from netsim.kernel.api import Fdb, KernelError, Link, Neigh, Route
from netsim.kernel.fastnl import FastNetlink, inet_conf_attr

T = TypeVar("T")

IFF_UP = 0x1
RTNH_F_ONLINK = 0x4
NUD_PERMANENT = 0x80
NUD_NOARP = 0x40
NTF_SELF = 0x02
NTF_PROXY = 0x08
SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254}
SCOPE_NAMES = {0: "global", 200: "site", 253: "link", 254: "host"}
RTN_UNICAST, RTN_BLACKHOLE = 1, 6


UNLINK_WORKERS = 16  # link deletions waiting for the kernel at once (see LinuxKernel.link_del)


def _raise_nl(what: str, exc: NetlinkError) -> KernelError:
    return KernelError(f"{what}: {os.strerror(exc.code) if exc.code > 0 else exc}", exc.code)


class _KernelThread:
    """A single worker thread with inline execution for re-entrant calls."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[tuple[Callable[[], Any], Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="netsim-kernel", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # delivered to the caller
                fut.set_exception(exc)

    def call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        fut: Future = Future()
        self._q.put((fn, fut))
        return fut.result()

    def stop(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=5)


def _raise_fd_limit() -> None:
    """Lift our own descriptor limit as far as the kernel allows: the daemon holds a listening socket per
    served container port in every pod (20,000 pods need more than 20,000 descriptors; at the hard limit of
    20,000 this machine's containers start with, sandboxes failed with EMFILE past ~15,000 pods). Root may
    raise the hard limit itself up to fs.nr_open, as containerd's unit does (LimitNOFILE=infinity in
    containerd.service); anyone else goes to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
    except (OSError, ValueError):
        nr_open = None
    if nr_open is not None:
        if hard == resource.RLIM_INFINITY or hard > nr_open:
            hard = want = nr_open
        if os.geteuid() == 0:
            want = nr_open
    for limit in dict.fromkeys((want, hard)):
        if soft >= limit:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            return
        except (ValueError, OSError):
            continue


class LinuxKernel:
    """Kernel implementation over netlink; see netsim.kernel.api.Kernel for the contract."""

    def __init__(self, max_sockets: int = 256):
        _raise_fd_limit()
        self._max_sockets = max_sockets
        self._worker = _KernelThread()
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._socks: OrderedDict[str, IPRoute] = OrderedDict()
        # One plain netlink socket per namespace for the hot requests (netsim.kernel.fastnl); a descriptor
        # each, no event loop, so more are kept than pyroute2 sockets: up to 4,096, but never more than a
        # twentieth of the descriptor limit. A pod's socket serves its sandbox's few requests (made, then
        # torn down), and every descriptor kept here is one fewer for the pods' listeners: with 4,096 kept
        # under a limit of 20,000, a node agent ran out at ~15,500 pods.
        self._fast: OrderedDict[str, FastNetlink] = OrderedDict()
        self._max_fast = max(max_sockets, min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 20))
        self._index: dict[tuple[str, str], int] = {}
        self._tools: dict[str, str] = {}
        self._unlinker = ThreadPoolExecutor(max_workers=UNLINK_WORKERS, thread_name_prefix="netsim-unlink")

    # -- plumbing ---------------------------------------------------------------------------------
    def _do(self, fn: Callable[[], T]) -> T:
        return self._worker.call(fn)

    def _enter(self, ns: str) -> None:
        fd = netns.open_netns(ns)
        try:
            netns.setns(fd)
        finally:
            os.close(fd)

    def _leave(self) -> None:
        netns.setns(self._home)

    def _ipr(self, ns: str) -> IPRoute:
        """The namespace's socket, opened inside it on first use (kernel thread only)."""
        ipr = self._socks.get(ns)
        if ipr is not None:
            self._socks.move_to_end(ns)
            return ipr
        self._enter(ns)
        try:
            ipr = IPRoute()
            ipr.link("get", index=1)  # opens the transport now, while we are inside `ns`
        finally:
            self._leave()
        self._keep(ns, ipr)
        return ipr

    def _fnl(self, ns: str) -> FastNetlink:
        """The namespace's plain netlink socket, opened inside it on first use (kernel thread only)."""
        fast = self._fast.get(ns)
        if fast is not None:
            self._fast.move_to_end(ns)
            return fast
        self._enter(ns)
        try:
            fast = FastNetlink()
        finally:
            self._leave()
        self._keep_fast(ns, fast)
        return fast

    def _keep_fast(self, ns: str, fast: FastNetlink) -> None:
        self._fast[ns] = fast
        while len(self._fast) > self._max_fast:
            _, old = self._fast.popitem(last=False)
            old.close()

    def _keep(self, ns: str, ipr: IPRoute) -> None:
        self._socks[ns] = ipr
        while len(self._socks) > self._max_sockets:
            _, old = self._socks.popitem(last=False)
            old.close()

    def _drop(self, ns: str) -> None:
        ipr = self._socks.pop(ns, None)
        if ipr is not None:
            ipr.close()
        fast = self._fast.pop(ns, None)
        if fast is not None:
            fast.close()
        # Other threads fill the index (_idx) while this runs on the kernel thread: take its keys in one C
        # call (list() holds the GIL throughout), not by a Python-level walk a writer can interleave with.
        for key in [k for k in list(self._index) if k[0] == ns]:
            self._index.pop(key, None)

    def _idx(self, ns: str, ifname: str) -> int:
        key = (ns, ifname)
        idx = self._index.get(key)
        if idx is None:
            msg = self._fnl(ns).link_get(ifname)
            if msg is None:
                raise KernelError(f"{ns}: no interface {ifname}", errno.ENODEV)
            idx = msg["index"]
            self._index[key] = idx
        return idx

    def _with_idx(self, ns: str, ifname: str, op: Callable[[int], T]) -> T:
        """Run `op(index)`, refreshing a cached index once if the link was replaced behind our back."""
        try:
            return op(self._idx(ns, ifname))
        except (NetlinkError, KernelError) as exc:
            code = exc.code if isinstance(exc, NetlinkError) else exc.errno
            if code != errno.ENODEV or (ns, ifname) not in self._index:
                raise
            del self._index[(ns, ifname)]
            return op(self._idx(ns, ifname))

    def close(self) -> None:
        def _close() -> None:
            for ns in set(self._socks) | set(self._fast):
                self._drop(ns)
        self._do(_close)
        self._unlinker.shutdown(wait=True)
        self._worker.stop()
        os.close(self._home)

    # -- namespaces --------------------------------------------------------------------------------
    def netns_create(self, name: str) -> None:
        def _create() -> None:
            try:
                netns.create_here(name)
            except FileExistsError:
                raise KernelError(f"network namespace {name} already exists", errno.EEXIST) from None
            try:
                fast = FastNetlink()  # opened inside the new namespace; pyroute2 only if ever needed
                fast.link_set(1, up=True, what=f"{name}: lo up")
            finally:
                self._leave()
            self._keep_fast(name, fast)
        self._do(_create)

    def netns_delete(self, name: str) -> None:
        def _delete() -> None:
            self._drop(name)
            netns.remove(name)
        self._do(_delete)

    def netns_delete_many(self, names: Sequence[str]) -> None:
        # The sockets kept for these namespaces are dropped on the kernel thread (one pass over the index),
        # then the unmounts run on the helper threads: umount2 waits for an RCU grace period after
        # releasing the mount lock (fs/namespace.c namespace_unlock), so the waits overlap.
        gone = set(names)

        def _drop_all() -> None:
            for n in gone:
                for table in (self._socks, self._fast):
                    sock = table.pop(n, None)
                    if sock is not None:
                        sock.close()
            for key in [k for k in self._index if k[0] in gone]:
                del self._index[key]
        self._do(_drop_all)
        # Each helper thread takes the next name itself (netsim.fanout): a future per namespace cost the
        # caller ~0.1 ms each, a second of a 10,000-pod `down`.
        fanout.each(netns.remove, names, UNLINK_WORKERS, self._unlinker)

    def netns_exists(self, name: str) -> bool:
        return os.path.exists(netns.netns_path(name))

    def netns_list(self, prefix: str = "") -> list[str]:
        return netns.list_names(prefix)

    # -- links -------------------------------------------------------------------------------------
    def veth_add(self, ns: str, ifname: str, peer_ns: str, peer_ifname: str, *, mtu: int | None = None,
                 mac: str | None = None, peer_mac: str | None = None, up: bool = True,
                 master: str | None = None, peer_ipv4_conf: Mapping[str, int] | None = None,
                 ipv4_conf: Mapping[str, int] | None = None) -> None:
        def _add() -> None:
            # One hand-encoded RTM_NEWLINK (netsim.kernel.fastnl) creates both ends in their namespaces,
            # this end up and enslaved as asked; the peer can only go up afterwards, in one more request
            # that also carries its IPv4 settings. The kernel echoes the new link, so both ends' indexes
            # are known without a lookup each. A creation applies no IFLA_AF_SPEC (rtnetlink
            # rtnl_newlink_create sets only the link's own attributes), so with `ipv4_conf` this end is
            # created down and brought up by one request carrying its settings too.
            own = dict(ipv4_conf or {})
            if own:
                inet_conf_attr(own)  # refuse unknown settings before anything is created
            fd = netns.open_netns(peer_ns) if peer_ns != ns else None
            self._index.pop((ns, ifname), None)
            self._index.pop((peer_ns, peer_ifname), None)
            try:
                made = self._fnl(ns).veth_add(
                    ifname, peer_ifname, peer_ns_fd=fd, mtu=mtu, mac=mac, peer_mac=peer_mac,
                    master=self._idx(ns, master) if master is not None else None, up=up and not own,
                    what=f"{ns}: add veth {ifname} <-> {peer_ns}/{peer_ifname}")
            finally:
                if fd is not None:
                    os.close(fd)
            if made is not None:
                self._index[(ns, ifname)], self._index[(peer_ns, peer_ifname)] = made
            if own:
                self._with_idx(ns, ifname, lambda i: self._fnl(ns).link_set(
                    i, up=True if up else None, inet_conf=own, what=f"{ns}: {ifname} up={up} ipv4 {own}"))
            conf = dict(peer_ipv4_conf or {})
            if up or conf:
                self._with_idx(peer_ns, peer_ifname, lambda i: self._fnl(peer_ns).link_set(
                    i, up=True if up else None, inet_conf=conf or None,
                    what=f"{peer_ns}: {peer_ifname} up={up} ipv4 {conf}"))
        self._do(_add)

    def neigh_parms_set(self, ns: str, ifname: str, *, proxy_delay_ms: int) -> None:
        self._do(lambda: self._with_idx(ns, ifname, lambda i: self._fnl(ns).neigh_parms_set(
            i, proxy_delay_ms=proxy_delay_ms, what=f"{ns}: {ifname} arp proxy_delay {proxy_delay_ms} ms")))

    def _set_up(self, ns: str, ifname: str) -> None:
        self._with_idx(ns, ifname, lambda i: self._fnl(ns).link_set(i, up=True, what=f"{ns}: {ifname} up"))

    def _add_link(self, ns: str, what: str, kw: dict[str, Any], up: bool) -> None:
        try:
            self._ipr(ns).link("add", **kw)
        except NetlinkError as exc:
            raise _raise_nl(f"{ns}: add {what} {kw['ifname']}", exc) from None
        if up:
            self._set_up(ns, kw["ifname"])

    def bridge_add(self, ns: str, ifname: str, *, mtu: int | None = None, mac: str | None = None,
                   up: bool = True) -> None:
        kw: dict[str, Any] = {"ifname": ifname, "kind": "bridge"}
        if mtu:
            kw["mtu"] = mtu
        if mac:
            kw["address"] = mac
        self._do(lambda: self._add_link(ns, "bridge", kw, up))

    def vxlan_add(self, ns: str, ifname: str, *, vni: int, dev: str, local: str, port: int,
                  learning: bool = False, mtu: int | None = None, mac: str | None = None,
                  up: bool = True) -> None:
        def _add() -> None:
            kw: dict[str, Any] = {
                "ifname": ifname, "kind": "vxlan", "vxlan_id": vni, "vxlan_link": self._idx(ns, dev),
                "vxlan_local": local, "vxlan_port": port, "vxlan_learning": 1 if learning else 0,
            }
            if mtu:
                kw["mtu"] = mtu
            if mac:
                kw["address"] = mac
            self._add_link(ns, "vxlan", kw, up)
        self._do(_add)

    def link_set(self, ns: str, ifname: str, *, up: bool | None = None, master: str | None = None,
                 nomaster: bool = False, mtu: int | None = None, mac: str | None = None) -> None:
        def _set() -> None:
            master_idx = 0 if nomaster else (self._idx(ns, master) if master is not None else None)
            self._with_idx(ns, ifname, lambda i: self._fnl(ns).link_set(
                i, up=up, master=master_idx, mtu=mtu, mac=mac,
                what=f"{ns}: set {ifname} up={up} master={master} mtu={mtu} mac={mac}"))
        self._do(_set)

    def link_get(self, ns: str, ifname: str) -> Link | None:
        def _get() -> Link | None:
            msg = self._fnl(ns).link_get(ifname)
            if msg is None:
                self._index.pop((ns, ifname), None)
                return None
            link = self._to_link(ns, msg)
            self._index[(ns, ifname)] = link.index
            return link
        return self._do(_get)

    def _to_link(self, ns: str, msg: Any) -> Link:
        info = msg.get("IFLA_LINKINFO")
        kind = info.get("IFLA_INFO_KIND") if info else None
        vx = None
        if kind == "vxlan":
            data = info.get("IFLA_INFO_DATA")
            vx = {
                "vni": data.get("IFLA_VXLAN_ID"), "port": data.get("IFLA_VXLAN_PORT"),
                "local": data.get("IFLA_VXLAN_LOCAL"), "learning": bool(data.get("IFLA_VXLAN_LEARNING")),
                "dev": data.get("IFLA_VXLAN_LINK"),
            }
        master = msg.get("IFLA_MASTER")
        master_name = None
        if master:
            m = self._fnl(ns).link_get(index=master)
            master_name = m.get("IFLA_IFNAME") if m is not None else None
        if kind is None and msg.get("IFLA_IFNAME") == "lo":
            kind = "loopback"
        return Link(
            name=msg.get("IFLA_IFNAME"), index=msg["index"], kind=kind or "unknown",
            mtu=msg.get("IFLA_MTU"), mac=msg.get("IFLA_ADDRESS") or "", up=bool(msg["flags"] & IFF_UP),
            master=master_name, peer_netns_id=msg.get("IFLA_LINK_NETNSID"), vxlan=vx,
        )

    def link_del(self, ns: str, ifname: str) -> bool:
        # Deleting a link returns only after an RCU barrier in the kernel (netdev_run_todo, ~30 ms). The
        # request goes out from a helper thread with its own socket in `ns`, so the kernel thread is not
        # held for that wait and concurrent deletions (a kubelet tearing down many pods) overlap theirs.
        self._index.pop((ns, ifname), None)
        return self._unlinker.submit(self._unlink, ns, ifname).result()

    def _unlink(self, ns: str, ifname: str) -> bool:
        """On an unlinker thread: a throwaway socket inside `ns`, one RTM_DELLINK."""
        try:
            self._enter(ns)  # this thread's namespace only
        except FileNotFoundError:
            raise KernelError(f"{ns}: delete {ifname}: no such network namespace", errno.ENOENT) from None
        try:
            sock = FastNetlink()
        finally:
            self._leave()
        try:
            return sock.link_del(ifname, what=f"{ns}: delete {ifname}")
        finally:
            sock.close()

    def links(self, ns: str) -> list[Link]:
        return self._do(lambda: [self._to_link(ns, m) for m in self._ipr(ns).get_links()])

    def brport_set(self, ns: str, ifname: str, *, hairpin: bool) -> None:
        self._do(lambda: self._with_idx(ns, ifname, lambda i: self._fnl(ns).brport_set(
            i, hairpin=hairpin, what=f"{ns}: bridge port {ifname} hairpin={hairpin}")))

    # -- addresses ---------------------------------------------------------------------------------
    def addr_add(self, ns: str, ifname: str, cidr: str) -> None:
        ip, _, plen = cidr.partition("/")

        def _add() -> None:
            try:
                self._with_idx(ns, ifname, lambda i: self._fnl(ns).addr_add(
                    i, ip, int(plen or 32), what=f"{ns}: add address {cidr} on {ifname}"))
            except KernelError as exc:
                if exc.errno != errno.EEXIST:
                    raise
        self._do(_add)

    def addr_del(self, ns: str, ifname: str, cidr: str) -> None:
        ip, _, plen = cidr.partition("/")

        def _del() -> None:
            try:
                self._with_idx(ns, ifname, lambda i: self._ipr(ns).addr(
                    "del", index=i, address=ip, prefixlen=int(plen or 32)))
            except NetlinkError as exc:
                if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                    raise _raise_nl(f"{ns}: delete address {cidr} on {ifname}", exc) from None
        self._do(_del)

    def addrs(self, ns: str, ifname: str | None = None) -> list[tuple[str, str]]:
        def _list() -> list[tuple[str, str]]:
            idx = self._idx(ns, ifname) if ifname else 0
            return [(label or "", f"{ip}/{plen}")
                    for label, ip, plen in self._fnl(ns).addrs(idx, what=f"{ns}: addresses of {ifname or 'all'}")]
        return self._do(_list)

    # -- routes ------------------------------------------------------------------------------------
    def _route_kw(self, ns: str, route: Route) -> dict[str, Any]:
        kw: dict[str, Any] = {"dst": "0.0.0.0/0" if route.dst == "default" else route.dst}
        if route.via:
            kw["gateway"] = route.via
        if route.dev:
            kw["oif"] = self._idx(ns, route.dev)
        if route.onlink:
            kw["flags"] = RTNH_F_ONLINK
        if route.scope:
            kw["scope"] = SCOPES[route.scope]
        if route.kind == "blackhole":
            kw["type"] = RTN_BLACKHOLE
        if route.proto is not None:
            kw["proto"] = route.proto
        if route.src:
            kw["prefsrc"] = route.src
        return kw

    def _route_fast(self, ns: str, route: Route, *, replace: bool) -> None:
        self._fnl(ns).route(
            replace=replace, dst="0.0.0.0/0" if route.dst == "default" else route.dst, via=route.via,
            oif=self._idx(ns, route.dev) if route.dev else None, onlink=route.onlink,
            scope=SCOPES[route.scope] if route.scope else 0, blackhole=route.kind == "blackhole",
            proto=route.proto, src=route.src, what=f"{ns}: {'replace' if replace else 'add'} route {route}")

    def route_replace(self, ns: str, route: Route) -> None:
        self._do(lambda: self._route_fast(ns, route, replace=True))

    def route_add(self, ns: str, route: Route) -> None:
        self._do(lambda: self._route_fast(ns, route, replace=False))

    def _delete(self, what: str, op: Callable[[], Any]) -> bool:
        """Run a pyroute2 delete on the kernel thread: True when something went, False when it was not
        there (ENOENT / ESRCH), KernelError otherwise."""
        def _del() -> bool:
            try:
                op()
            except NetlinkError as exc:
                if exc.code in (errno.ENOENT, errno.ESRCH):
                    return False
                raise _raise_nl(what, exc) from None
            return True
        return self._do(_del)

    def route_del(self, ns: str, route: Route) -> bool:
        def _op() -> None:
            try:
                kw = self._route_kw(ns, route)
            except KernelError:
                kw = {"dst": route.dst}
            self._ipr(ns).route("del", **kw)
        return self._delete(f"{ns}: delete route {route}", _op)

    @staticmethod
    def _name_of(ipr: IPRoute, index: int) -> str | None:
        """An interface's name by index; None when it vanished meanwhile (a pod deleted concurrently)."""
        try:
            return ipr.link("get", index=index)[0].get("IFLA_IFNAME")
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise

    def routes(self, ns: str) -> list[Route]:
        def _list() -> list[Route]:
            ipr = self._ipr(ns)
            names: dict[int, str] = {}
            out = []
            for m in ipr.get_routes(family=2, table=254):
                dst = m.get("RTA_DST")
                oif = m.get("RTA_OIF")
                if oif and oif not in names:
                    names[oif] = self._name_of(ipr, oif)
                if oif and names[oif] is None:
                    continue  # the interface went away after the dump: so did its routes
                out.append(Route(
                    dst=f"{dst}/{m['dst_len']}" if dst else "default",
                    via=m.get("RTA_GATEWAY"), dev=names.get(oif) if oif else None,
                    onlink=bool(m["flags"] & RTNH_F_ONLINK), scope=SCOPE_NAMES.get(m["scope"]),
                    kind="blackhole" if m["type"] == RTN_BLACKHOLE else "unicast", proto=m["proto"],
                    src=m.get("RTA_PREFSRC"),
                ))
            return out
        return self._do(_list)

    # -- neighbours and fdb ------------------------------------------------------------------------
    def neigh_replace(self, ns: str, ifname: str, ip: str, mac: str, *, permanent: bool = True) -> None:
        state = NUD_PERMANENT if permanent else 0x02  # NUD_REACHABLE

        def _replace() -> None:
            self._with_idx(ns, ifname, lambda i: self._fnl(ns).neigh_replace(
                i, ip, mac, state, what=f"{ns}: neighbour {ip} {mac} on {ifname}"))
        self._do(_replace)

    def neigh_del(self, ns: str, ifname: str, ip: str) -> bool:
        return self._delete(f"{ns}: delete neighbour {ip} on {ifname}", lambda: self._with_idx(
            ns, ifname, lambda i: self._ipr(ns).neigh("del", dst=ip, ifindex=i)))

    def neighs(self, ns: str, ifname: str | None = None) -> list[Neigh]:
        def _list() -> list[Neigh]:
            ipr = self._ipr(ns)
            kw = {"ifindex": self._idx(ns, ifname)} if ifname else {}
            names: dict[int, str] = {}
            out = []
            for m in ipr.get_neighbours(family=2, **kw):
                i = m["ifindex"]
                if i not in names:
                    names[i] = self._name_of(ipr, i)
                if m.get("NDA_LLADDR") is None or names[i] is None:
                    continue
                out.append(Neigh(names[i], m.get("NDA_DST"), m.get("NDA_LLADDR"),
                                 bool(m["state"] & NUD_PERMANENT)))
            return out
        return self._do(_list)

    def neigh_proxy_add(self, ns: str, ifname: str, ip: str) -> None:
        def _add() -> None:
            try:
                self._with_idx(ns, ifname, lambda i: self._ipr(ns).neigh(
                    "add", dst=ip, ifindex=i, flags=NTF_PROXY))
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise _raise_nl(f"{ns}: proxy neighbour {ip} on {ifname}", exc) from None
        self._do(_add)

    def neigh_proxy_del(self, ns: str, ifname: str, ip: str) -> bool:
        return self._delete(f"{ns}: delete proxy neighbour {ip} on {ifname}", lambda: self._with_idx(
            ns, ifname, lambda i: self._ipr(ns).neigh("del", dst=ip, ifindex=i, flags=NTF_PROXY)))

    def fdb_replace(self, ns: str, ifname: str, mac: str, dst: str, *, permanent: bool = True) -> None:
        state = (NUD_PERMANENT if permanent else 0x02) | NUD_NOARP

        def _replace() -> None:
            try:
                self._with_idx(ns, ifname, lambda i: self._ipr(ns).fdb(
                    "replace", ifindex=i, lladdr=mac, dst=dst, state=state, flags=NTF_SELF))
            except NetlinkError as exc:
                raise _raise_nl(f"{ns}: fdb {mac} dst {dst} on {ifname}", exc) from None
        self._do(_replace)

    def fdb_append(self, ns: str, ifname: str, mac: str, dst: str) -> None:
        def _append() -> None:
            try:
                self._with_idx(ns, ifname, lambda i: self._ipr(ns).fdb(
                    "append", ifindex=i, lladdr=mac, dst=dst, state=NUD_PERMANENT | NUD_NOARP, flags=NTF_SELF))
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise _raise_nl(f"{ns}: fdb append {mac} dst {dst} on {ifname}", exc) from None
        self._do(_append)

    def fdb_del(self, ns: str, ifname: str, mac: str, dst: str) -> bool:
        return self._delete(f"{ns}: delete fdb {mac} on {ifname}", lambda: self._with_idx(
            ns, ifname, lambda i: self._ipr(ns).fdb("del", ifindex=i, lladdr=mac, dst=dst)))

    def fdbs(self, ns: str, ifname: str) -> list[Fdb]:
        def _list() -> list[Fdb]:
            idx = self._idx(ns, ifname)
            out = []
            for m in self._ipr(ns).fdb("dump", ifindex=idx):
                if m["ifindex"] != idx:
                    continue
                out.append(Fdb(ifname, m.get("NDA_LLADDR"), m.get("NDA_DST"), bool(m["state"] & NUD_PERMANENT)))
            return out
        return self._do(_list)

    # -- sysctls -----------------------------------------------------------------------------------
    @staticmethod
    def _sysctl_path(key: str) -> str:
        # Dotted keys as sysctl(8) writes them; use "/" separators when an interface name has a dot
        # (net/ipv4/conf/flannel.1/forwarding).
        rel = key if "/" in key else key.replace(".", "/")
        return "/proc/sys/" + rel

    def sysctl_set(self, ns: str, key: str, value: str | int) -> None:
        path = self._sysctl_path(key)

        def _set() -> None:
            self._enter(ns)
            try:
                with open(path, "w") as f:
                    f.write(str(value))
            except OSError as exc:
                raise KernelError(f"{ns}: sysctl {key}={value}: {exc.strerror}", exc.errno) from None
            finally:
                self._leave()
        self._do(_set)

    def sysctl_get(self, ns: str, key: str) -> str:
        path = self._sysctl_path(key)

        def _get() -> str:
            self._enter(ns)
            try:
                with open(path) as f:
                    return f.read().strip()
            except OSError as exc:
                raise KernelError(f"{ns}: sysctl {key}: {exc.strerror}", exc.errno) from None
            finally:
                self._leave()
        return self._do(_get)

    def batch(self, fn: Callable[[], T]) -> T:
        # On the kernel thread, every call fn makes runs inline (_KernelThread.call): no queue hop and
        # thread switch per call, which cost more than a fast netlink request itself.
        return self._do(fn)

    # -- processes and payloads --------------------------------------------------------------------
    def call_in(self, ns: str, fn: Callable[[], T]) -> T:
        def _call() -> T:
            self._enter(ns)
            try:
                return fn()
            finally:
                self._leave()
        return self._do(_call)

    def spawn(self, ns: str, argv: Sequence[str], **popen_kw: Any) -> subprocess.Popen:
        """Start a process inside `ns` (it inherits the kernel thread's namespace at fork)."""
        return self.call_in(ns, lambda: subprocess.Popen(list(argv), **popen_kw))

    def run(self, ns: str, argv: Sequence[str], *, input: str | bytes | None = None, check: bool = True,
            timeout: float | None = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        text = not isinstance(input, bytes)
        try:
            proc = self.spawn(ns, argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text, env=env)
        except FileNotFoundError:
            raise KernelError(f"{argv[0]}: command not found", errno.ENOENT) from None
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise KernelError(f"{ns}: {argv[0]} did not finish within {timeout}s", errno.ETIMEDOUT) from None
        result = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
        if check and proc.returncode != 0:
            raise KernelError(f"{ns}: {' '.join(argv)} failed ({proc.returncode}): {(err or '').strip()}")
        return result

    def _tool(self, *names: str) -> str:
        """The first of `names` on PATH (cached)."""
        key = names[0]
        if key not in self._tools:
            for n in names:
                path = shutil.which(n)
                if path:
                    self._tools[key] = path
                    break
            else:
                raise KernelError(f"none of {', '.join(names)} is installed", errno.ENOENT)
        return self._tools[key]

    def iptables_restore(self, ns: str, payload: str, *, noflush: bool = True, counters: bool = False,
                         timeout: float | None = 30) -> None:
        # iptables-nft: its rules are nftables rules, so nft trace events (netsim trace) cover them.
        argv = [self._tool("iptables-nft-restore", "iptables-restore")]
        if noflush:
            argv.append("--noflush")
        if counters:
            argv.append("--counters")
        self.run(ns, argv, input=payload, timeout=timeout)

    def ipset_restore(self, ns: str, payload: str) -> None:
        self.run(ns, [self._tool("ipset"), "restore"], input=payload)

    def nft_apply(self, ns: str, payload: str) -> None:
        self.run(ns, [self._tool("nft"), "-f", "-"], input=payload)
