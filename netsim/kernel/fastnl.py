"""A synchronous netlink request path for the per-pod hot operations.

pyroute2 0.9 runs every request through an asyncio event loop: about 0.3-0.7 ms per request, where the
kernel answers a netlink request in ~25 us; even its message classes alone cost ~0.1 ms to encode one
request. The requests a pod sandbox needs (veth creation, link lookup and set, bridge-port flags, address,
route and neighbour add, an address dump) are simple and fixed, so they are packed here with `struct` and
sent on a plain NETLINK_ROUTE socket opened inside the namespace, one request and one answer at a time.
Route, neighbour and FDB dumps and the creation of other device kinds stay with pyroute2.

Message layouts are the uapi ones (linux/rtnetlink.h, if_link.h, if_addr.h, neighbour.h, veth.h):
* a veth pair is one RTM_NEWLINK whose IFLA_LINKINFO/IFLA_INFO_DATA nests VETH_INFO_PEER = the peer's
  ifinfomsg + attributes. This end can be created up and enslaved (rtnl_newlink_create applies ifi_flags
  and IFLA_MASTER once the device exists); the peer cannot be created up - veth_newlink configures it
  before the pair is linked and veth_open refuses with ENOTCONN - so the peer goes up in a second request;
* bridge-port flags (hairpin) are RTM_SETLINK for family AF_BRIDGE with a nested IFLA_PROTINFO, as
  iproute2's `bridge link set` and the CNI bridge plugin (vishvananda/netlink LinkSetHairpin) send them.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

from netsim.kernel.api import KernelError
from netsim.kernel.nlcodec import NLA_F_NESTED, NLMSG_HDR, attrs, nla

# netlink header and flags (linux/netlink.h)
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_ECHO, NLM_F_DUMP = 0x1, 0x4, 0x8, 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12

# rtnetlink message types (linux/rtnetlink.h)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE = 24
RTM_NEWNEIGH = 28
RTM_SETNEIGHTBL = 67

# family headers
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
IFF_UP = 0x1
AF_BRIDGE = 7

# attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_PROTINFO, IFLA_LINKINFO = 1, 3, 4, 10, 12, 18
IFLA_LINK, IFLA_AF_SPEC, IFLA_NET_NS_FD, IFLA_LINK_NETNSID = 5, 26, 28, 37
IFLA_INET_CONF = 1  # inside IFLA_AF_SPEC / AF_INET
# IPv4 per-interface settings (linux/ip.h IPV4_DEVCONF_*) that may be set through IFLA_INET_CONF: the kernel
# (devinet.c inet_set_link_af -> ipv4_devconf_set) stores the value and marks it set, as a write to
# /proc/sys/net/ipv4/conf/<if>/<name> does. What a proc write does besides is nothing for a new veth:
# arp_notify and proxy_arp only notify netconf listeners (devinet_conf_proc), route_localnet flushes the
# route cache only when turned off, forwarding (devinet_sysctl_forward) disables LRO (a veth has none),
# notifies and flushes the route cache (a new link has no cached routes).
IPV4_DEVCONF = {"forwarding": 1, "proxy_arp": 3, "arp_notify": 22, "route_localnet": 26}
# neighbour table parameters (linux/neighbour.h): RTM_SETNEIGHTBL { ndtmsg, NDTA_NAME, NDTA_PARMS {
# NDTPA_IFINDEX, NDTPA_PROXY_DELAY (u64 ms) } }
NDTA_NAME, NDTA_PARMS = 1, 6
NDTPA_IFINDEX, NDTPA_PROXY_DELAY = 1, 13
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
IFLA_VXLAN_ID, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT = 1, 3, 4, 7, 15
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL = 1, 2, 3
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 7, 15
NDA_DST, NDA_LLADDR = 1, 2

RT_TABLE_MAIN = 254
RTPROT_STATIC = 4  # what the pyroute2 path wrote for routes without an explicit protocol
RTN_UNICAST, RTN_BLACKHOLE = 1, 6
RTNH_F_ONLINK = 0x4


def _answers(data: memoryview, seq: int) -> Iterator[tuple[int, int, int]]:
    """(offset, length, type) of each message of one received buffer that answers request `seq`."""
    off = 0
    while off + 16 <= len(data):
        length, mtype, _, got, _ = NLMSG_HDR.unpack_from(data, off)
        if length < 16:
            return
        if got == seq:
            yield off, length, mtype
        off += (length + 3) & ~3


def _raise_error(data: bytes | memoryview, offset: int, what: str) -> None:
    """An NLMSG_ERROR message at `offset`: raise KernelError with its errno unless it is an ack (0)."""
    code = -struct.unpack_from("=i", data, offset + 16)[0]
    if code:
        raise KernelError(f"{what}: {os.strerror(code)}", code)


def _u32(v: int) -> bytes:
    return struct.pack("=I", v)


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _link_attrs(ifname: str, mtu: int | None, mac: str | None) -> bytes:
    out = nla(IFLA_IFNAME, ifname.encode() + b"\0")
    if mtu:
        out += nla(IFLA_MTU, _u32(mtu))
    if mac:
        out += nla(IFLA_ADDRESS, _mac_bytes(mac))
    return out


def veth_body(ifname: str, peer_ifname: str, *, peer_ns_fd: int | None = None, mtu: int | None = None,
              mac: str | None = None, peer_mac: str | None = None, master: int | None = None,
              up: bool = True) -> bytes:
    """RTM_NEWLINK body for a veth pair: this end (up when `up`, enslaved to ifindex `master`), the peer
    in `peer_ns_fd`'s namespace, created down (see the module docstring)."""
    flags = IFF_UP if up else 0
    peer = _IFINFO.pack(0, 0, 0, 0, 0) + _link_attrs(peer_ifname, mtu, peer_mac)
    if peer_ns_fd is not None:
        peer += nla(IFLA_NET_NS_FD, _u32(peer_ns_fd))
    linkinfo = nla(IFLA_INFO_KIND, b"veth") + nla(IFLA_INFO_DATA | NLA_F_NESTED, nla(VETH_INFO_PEER, peer))
    body = _IFINFO.pack(0, 0, 0, flags, flags) + _link_attrs(ifname, mtu, mac)
    if master:
        body += nla(IFLA_MASTER, _u32(master))
    return body + nla(IFLA_LINKINFO | NLA_F_NESTED, linkinfo)


def inet_conf_attr(conf: dict[str, int]) -> bytes:
    """IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { IPV4_DEVCONF_x: u32 } } } for an RTM_NEWLINK (rtnetlink
    do_setlink -> inet_set_link_af)."""
    unknown = sorted(set(conf) - set(IPV4_DEVCONF))
    if unknown:
        raise KernelError(f"IPv4 settings {', '.join(unknown)} cannot be set with a link request", errno.EINVAL)
    inner = b"".join(nla(IPV4_DEVCONF[k], _u32(int(v))) for k, v in conf.items())
    return nla(IFLA_AF_SPEC | NLA_F_NESTED, nla(socket.AF_INET | NLA_F_NESTED, nla(IFLA_INET_CONF | NLA_F_NESTED,
                                                                                     inner)))


def neightbl_parms_body(index: int, *, proxy_delay_ms: int) -> bytes:
    """RTM_SETNEIGHTBL body setting one interface's ARP parameters (`arp_cache` table, family AF_INET):
    neighbour.c neightbl_set finds the table by family and name, the interface's parms by NDTPA_IFINDEX,
    and stores NDTPA_PROXY_DELAY with NEIGH_VAR_SET, marking it set as a write to
    /proc/sys/net/ipv4/neigh/<if>/proxy_delay does (neigh_proc_update)."""
    parms = nla(NDTPA_IFINDEX, _u32(index)) + nla(NDTPA_PROXY_DELAY, struct.pack("=Q", proxy_delay_ms))
    return struct.pack("=BBH", socket.AF_INET, 0, 0) + nla(NDTA_NAME, b"arp_cache\0") \
        + nla(NDTA_PARMS | NLA_F_NESTED, parms)


def brport_body(index: int, *, hairpin: bool) -> bytes:
    """RTM_SETLINK body (family AF_BRIDGE) setting a bridge port's hairpin mode."""
    return _IFINFO.pack(AF_BRIDGE, 0, index, 0, 0) + nla(
        IFLA_PROTINFO | NLA_F_NESTED, nla(IFLA_BRPORT_MODE, struct.pack("=B", int(hairpin))))


def message(typ: int, flags: int, seq: int, body: bytes) -> bytes:
    """A whole netlink message: header + body."""
    return NLMSG_HDR.pack(16 + len(body), typ, flags, seq, 0) + body


def decode_link(data: bytes | memoryview, offset: int = 0) -> dict[str, Any]:
    """An RTM_NEWLINK message as the nested dict shape pyroute2's messages answer `.get()` with (the
    fields LinuxKernel reads: index, flags, name, MTU, MAC, master, link netns id, kind, VXLAN data)."""
    length = NLMSG_HDR.unpack_from(data, offset)[0]
    _, _, index, flags, _ = _IFINFO.unpack_from(data, offset + 16)
    a = attrs(memoryview(data), offset + 32, offset + length)
    msg: dict[str, Any] = {"index": index, "flags": flags}
    if IFLA_IFNAME in a:
        msg["IFLA_IFNAME"] = bytes(a[IFLA_IFNAME]).rstrip(b"\0").decode()
    if IFLA_MTU in a:
        msg["IFLA_MTU"] = struct.unpack_from("=I", a[IFLA_MTU])[0]
    if IFLA_ADDRESS in a:
        msg["IFLA_ADDRESS"] = _mac_str(bytes(a[IFLA_ADDRESS]))
    if IFLA_MASTER in a:
        msg["IFLA_MASTER"] = struct.unpack_from("=I", a[IFLA_MASTER])[0]
    if IFLA_LINK in a:
        msg["IFLA_LINK"] = struct.unpack_from("=i", a[IFLA_LINK])[0]
    if IFLA_LINK_NETNSID in a:
        msg["IFLA_LINK_NETNSID"] = struct.unpack_from("=i", a[IFLA_LINK_NETNSID])[0]
    if IFLA_LINKINFO in a:
        raw = a[IFLA_LINKINFO]
        li = attrs(memoryview(raw), 0, len(raw))
        info: dict[str, Any] = {}
        if IFLA_INFO_KIND in li:
            info["IFLA_INFO_KIND"] = bytes(li[IFLA_INFO_KIND]).rstrip(b"\0").decode()
        if info.get("IFLA_INFO_KIND") == "vxlan" and IFLA_INFO_DATA in li:
            raw = li[IFLA_INFO_DATA]
            vx = attrs(memoryview(raw), 0, len(raw))
            d: dict[str, Any] = {}
            if IFLA_VXLAN_ID in vx:
                d["IFLA_VXLAN_ID"] = struct.unpack_from("=I", vx[IFLA_VXLAN_ID])[0]
            if IFLA_VXLAN_LINK in vx:
                d["IFLA_VXLAN_LINK"] = struct.unpack_from("=I", vx[IFLA_VXLAN_LINK])[0]
            if IFLA_VXLAN_LOCAL in vx:
                d["IFLA_VXLAN_LOCAL"] = socket.inet_ntoa(bytes(vx[IFLA_VXLAN_LOCAL]))
            if IFLA_VXLAN_LEARNING in vx:
                d["IFLA_VXLAN_LEARNING"] = vx[IFLA_VXLAN_LEARNING][0]
            if IFLA_VXLAN_PORT in vx:
                d["IFLA_VXLAN_PORT"] = struct.unpack_from(">H", vx[IFLA_VXLAN_PORT])[0]
            info["IFLA_INFO_DATA"] = d
        msg["IFLA_LINKINFO"] = info
    return msg


class FastNetlink:
    """One NETLINK_ROUTE socket inside one namespace (create it on a thread that is in that namespace)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        # Strict checking makes the kernel filter dumps by the header's fields (an address dump for one
        # interface returns only its addresses).
        self.sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, typ: int, flags: int, body: bytes, what: str) -> memoryview | None:
        """Send one request (`body`: family header + attributes). Return the answer for a GET, None for an
        acknowledged change; raise KernelError with the kernel's errno otherwise."""
        self.seq += 1
        self.sock.send(message(typ, flags, self.seq, body))
        while True:
            data = self.sock.recv(65536)
            _, mtype, _, seq, _ = NLMSG_HDR.unpack_from(data)
            if seq != self.seq:
                continue  # a stale answer to an earlier request that failed half-way
            if mtype == NLMSG_ERROR:
                _raise_error(data, 0, what)
                return None
            return memoryview(data)

    def request_echo(self, typ: int, flags: int, body: bytes, what: str) -> memoryview | None:
        """Send a change with NLM_F_ECHO and NLM_F_ACK: wait for the acknowledgement (raising on an error:
        the echo may precede a failure, e.g. a veth created and then refused by its master) and return the
        echoed message of the same sequence number, or None when none came."""
        self.seq += 1
        self.sock.send(message(typ, flags, self.seq, body))
        echo: memoryview | None = None
        while True:
            data = memoryview(self.sock.recv(65536))
            for off, length, mtype in _answers(data, self.seq):
                if mtype == NLMSG_ERROR:
                    _raise_error(data, off, what)
                    return echo
                if echo is None:
                    echo = memoryview(bytes(data[off:off + length]))

    def dump(self, typ: int, body: bytes, what: str) -> list[tuple[memoryview, int, int]]:
        """A dump request: (buffer, offset, length) of every answer message."""
        self.seq += 1
        self.sock.send(message(typ, NLM_F_REQUEST | NLM_F_DUMP, self.seq, body))
        out: list[tuple[memoryview, int, int]] = []
        while True:
            data = memoryview(self.sock.recv(1 << 17))
            for off, length, mtype in _answers(data, self.seq):
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    _raise_error(data, off, what)
                    return out
                out.append((data, off, length))

    # -- links ---------------------------------------------------------------------------------------
    def link_get(self, ifname: str | None = None, index: int | None = None) -> dict[str, Any] | None:
        """The link (decode_link's dict), or None when there is none."""
        if index is not None:
            body = _IFINFO.pack(0, 0, index, 0, 0)
        else:
            body = _IFINFO.pack(0, 0, 0, 0, 0) + nla(IFLA_IFNAME, str(ifname).encode() + b"\0")
        try:
            data = self.request(RTM_GETLINK, NLM_F_REQUEST, body, f"get {ifname or index}")
        except KernelError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        return decode_link(data) if data is not None else None

    def link_set(self, index: int, *, up: bool | None = None, master: int | None = None, mtu: int | None = None,
                 mac: str | None = None, inet_conf: dict[str, int] | None = None, what: str = "") -> None:
        flags = change = 0
        if up is not None:
            flags, change = (IFF_UP if up else 0), IFF_UP
        body = _IFINFO.pack(0, 0, index, flags, change)
        if master is not None:
            body += nla(IFLA_MASTER, _u32(master))
        if mtu is not None:
            body += nla(IFLA_MTU, _u32(mtu))
        if mac is not None:
            body += nla(IFLA_ADDRESS, _mac_bytes(mac))
        if inet_conf:
            body += inet_conf_attr(inet_conf)
        self.request(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, body, what)

    def link_del(self, ifname: str, what: str = "") -> bool:
        """Delete a link by name; False when there is none. Blocks until the kernel has unregistered it
        (an RCU barrier: tens of milliseconds)."""
        body = _IFINFO.pack(0, 0, 0, 0, 0) + nla(IFLA_IFNAME, ifname.encode() + b"\0")
        try:
            self.request(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, body, what)
        except KernelError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise
        return True

    def veth_add(self, ifname: str, peer_ifname: str, *, peer_ns_fd: int | None, mtu: int | None,
                 mac: str | None, peer_mac: str | None, master: int | None, up: bool,
                 what: str = "") -> tuple[int, int] | None:
        """Both ends of a veth in one RTM_NEWLINK (see `veth_body`). Asked with NLM_F_ECHO, the kernel
        (>= 6.3, rtnl_newlink_create -> rtnl_configure_link) sends the new link back: (this end's index,
        the peer's index from its IFLA_LINK), so neither needs a lookup; None when no echo came."""
        body = veth_body(ifname, peer_ifname, peer_ns_fd=peer_ns_fd, mtu=mtu, mac=mac, peer_mac=peer_mac,
                         master=master, up=up)
        echo = self.request_echo(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
                                 body, what)
        if echo is None:
            return None
        link = decode_link(echo)
        if link.get("IFLA_IFNAME") != ifname or not link.get("IFLA_LINK"):
            return None
        return link["index"], link["IFLA_LINK"]

    def neigh_parms_set(self, index: int, *, proxy_delay_ms: int, what: str = "") -> None:
        """One interface's ARP proxy delay (see `neightbl_parms_body`)."""
        self.request(RTM_SETNEIGHTBL, NLM_F_REQUEST | NLM_F_ACK, neightbl_parms_body(
            index, proxy_delay_ms=proxy_delay_ms), what)

    def brport_set(self, index: int, *, hairpin: bool, what: str = "") -> None:
        """A bridge port's hairpin mode (`bridge link set dev X hairpin on`)."""
        self.request(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, brport_body(index, hairpin=hairpin), what)

    # -- addresses -----------------------------------------------------------------------------------
    def addr_add(self, index: int, ip: str, prefixlen: int, what: str = "") -> None:
        raw = socket.inet_aton(ip)
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index) + nla(IFA_LOCAL, raw) + nla(IFA_ADDRESS, raw)
        self.request(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body, what)

    def addrs(self, index: int = 0, what: str = "") -> list[tuple[str | None, str, int]]:
        """IPv4 addresses as (label, address, prefixlen), of one interface when `index` is given."""
        out: list[tuple[str | None, str, int]] = []
        for data, off, length in self.dump(RTM_GETADDR, _IFADDR.pack(socket.AF_INET, 0, 0, 0, index), what):
            family, plen, _, _, idx = _IFADDR.unpack_from(data, off + 16)
            if family != socket.AF_INET or (index and idx != index):
                continue
            a = attrs(memoryview(data), off + 24, off + length)
            addr = a.get(IFA_ADDRESS) or a.get(IFA_LOCAL)
            if addr is None:
                continue
            label = bytes(a[IFA_LABEL]).rstrip(b"\0").decode() if IFA_LABEL in a else None
            out.append((label, socket.inet_ntoa(bytes(addr)), plen))
        return out

    # -- routes and neighbours -----------------------------------------------------------------------
    def route(self, *, replace: bool, dst: str, via: str | None, oif: int | None, onlink: bool, scope: int,
              blackhole: bool, proto: int | None, src: str | None, what: str = "") -> None:
        net, _, plen = dst.partition("/")
        dst_len = int(plen or 32) if net != "0.0.0.0" else 0
        body = _RTMSG.pack(socket.AF_INET, dst_len, 0, 0, RT_TABLE_MAIN,
                           RTPROT_STATIC if proto is None else proto, scope,
                           RTN_BLACKHOLE if blackhole else RTN_UNICAST, RTNH_F_ONLINK if onlink else 0)
        body += nla(RTA_TABLE, _u32(RT_TABLE_MAIN))
        if dst_len:
            body += nla(RTA_DST, socket.inet_aton(net))
        if via:
            body += nla(RTA_GATEWAY, socket.inet_aton(via))
        if oif:
            body += nla(RTA_OIF, _u32(oif))
        if src:
            body += nla(RTA_PREFSRC, socket.inet_aton(src))
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
        self.request(RTM_NEWROUTE, flags, body, what)

    def neigh_replace(self, index: int, ip: str, mac: str, state: int, what: str = "") -> None:
        body = _NDMSG.pack(socket.AF_INET, index, state, 0, 0) + nla(NDA_DST, socket.inet_aton(ip)) \
            + nla(NDA_LLADDR, _mac_bytes(mac))
        self.request(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body, what)
