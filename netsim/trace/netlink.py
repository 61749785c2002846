"""Minimal netlink plumbing shared by the trace and conntrack listeners.

Netlink messages are `struct nlmsghdr` (length, type, flags, seq, pid in host byte order) followed by a
family header and TLV attributes (`struct nlattr`: u16 length, u16 type, payload padded to 4 bytes;
the type's top two bits are the NESTED / NET_BYTEORDER flags). nfnetlink puts a 4-byte `nfgenmsg`
(family, version, resource id) before the attributes. See Linux `include/uapi/linux/netlink.h` and
`include/uapi/linux/netfilter/nfnetlink.h`.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterable, Iterator

from netsim.kernel.api import Kernel
from netsim.netns_sockets import open_in_netns

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NLMSG_HDR = struct.Struct("=IHHII")
NFGEN_HDR = struct.Struct("=BBH")
NLA_HDR = struct.Struct("=HH")
NLA_TYPE_MASK = 0x3FFF


def attrs(data: bytes, off: int = 0) -> dict[int, bytes]:
    """Attributes (type -> payload) of `data` from `off`; a repeated type keeps the last one."""
    out: dict[int, bytes] = {}
    while off + NLA_HDR.size <= len(data):
        length, kind = NLA_HDR.unpack_from(data, off)
        if length < NLA_HDR.size or off + length > len(data):
            break
        out[kind & NLA_TYPE_MASK] = data[off + NLA_HDR.size: off + length]
        off += (length + 3) & ~3
    return out


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, flags, body after nlmsghdr) of each message in one datagram."""
    off = 0
    while off + NLMSG_HDR.size <= len(data):
        length, kind, flags, _seq, _pid = NLMSG_HDR.unpack_from(data, off)
        if length < NLMSG_HDR.size or off + length > len(data):
            return
        yield kind, flags, data[off + NLMSG_HDR.size: off + length]
        off += (length + 3) & ~3


def nlmsg(kind: int, body: bytes, flags: int = 0, seq: int = 0) -> bytes:
    """One netlink message (used by tests to build what the kernel would send)."""
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, flags, seq, 0) + body


def nla(kind: int, payload: bytes) -> bytes:
    """One attribute, padded."""
    raw = NLA_HDR.pack(NLA_HDR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


class NfnetlinkListener:
    """A NETLINK_NETFILTER socket opened inside `ns` and joined to multicast `groups`.

    Opened on the kernel thread (the socket belongs to the namespace it was created in) and read from
    any thread afterwards. The kernel queues messages until read, so callers open the listener before
    the traffic and read afterwards; a full buffer is remembered in `overrun`.
    """

    def __init__(self, kernel: Kernel, ns: str, groups: Iterable[int], *, what: str, rcvbuf: int = 4 << 20):
        self.ns = ns
        self.overrun = False
        groups = list(groups)

        def _setup(s: socket.socket) -> None:
            s.bind((0, 0))
            for group in groups:
                s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        self._sock = open_in_netns(kernel, ns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER,
                                   rcvbuf=rcvbuf, setup=_setup, what=f"listen for {what}")

    def fileno(self) -> int:
        return self._sock.fileno()

    def datagrams(self) -> list[bytes]:
        """Everything queued now, without blocking."""
        out = []
        while True:
            try:
                out.append(self._sock.recv(1 << 16))
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overrun = True

    def close(self) -> None:
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
