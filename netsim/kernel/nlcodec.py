"""The one netlink codec: message headers and TLV attributes, packed and unpacked.

Netlink messages are `struct nlmsghdr` (length, type, flags, seq, pid in host byte order) followed by a
family header and attributes (`struct nlattr`: u16 length, u16 type, payload padded to 4 bytes; the type's
top two bits are the NESTED / NET_BYTEORDER flags). nfnetlink puts a 4-byte `nfgenmsg` (family, version,
resource id) before its attributes. See Linux `include/uapi/linux/netlink.h` and
`include/uapi/linux/netfilter/nfnetlink.h`.

Used by the kernel's hand-packed rtnetlink path (`fastnl.py`, which passes memoryviews so attribute
payloads are not copied) and by trace's nfnetlink listeners (nftrace, ctnetlink events). Pure: no sockets.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TypeVar

NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
NLA_HDR = struct.Struct("=HH")       # len, type
NFGEN_HDR = struct.Struct("=BBH")    # family, version, resource id (big endian on the wire, unused here)
NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = 0x3FFF

Buf = TypeVar("Buf", bytes, memoryview)


def nla(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    length = NLA_HDR.size + len(payload)
    return NLA_HDR.pack(length, kind) + payload + b"\0" * (-length & 3)


def nlmsg(kind: int, body: bytes, flags: int = 0, seq: int = 0) -> bytes:
    """One whole message: header + body (the family header and attributes)."""
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, flags, seq, 0) + body


def attrs(data: Buf, start: int = 0, end: int | None = None) -> dict[int, Buf]:
    """Attributes of `data[start:end]`: {type with the flag bits masked: payload}. A repeated type keeps the
    last one; a malformed attribute (too short, or running past `end`) ends the walk. Payloads are slices
    of `data`: pass a memoryview to avoid copies."""
    end = len(data) if end is None else end
    out: dict[int, Buf] = {}
    while start + NLA_HDR.size <= end:
        length, kind = NLA_HDR.unpack_from(data, start)
        if length < NLA_HDR.size or start + length > end:
            break
        out[kind & NLA_TYPE_MASK] = data[start + NLA_HDR.size: start + length]
        start += (length + 3) & ~3
    return out


def messages(data: Buf) -> Iterator[tuple[int, int, Buf]]:
    """(type, flags, body after the nlmsghdr) of each message in one datagram; stops at a malformed one."""
    off = 0
    while off + NLMSG_HDR.size <= len(data):
        length, kind, flags, _seq, _pid = NLMSG_HDR.unpack_from(data, off)
        if length < NLMSG_HDR.size or off + length > len(data):
            return
        yield kind, flags, data[off + NLMSG_HDR.size: off + length]
        off += (length + 3) & ~3
