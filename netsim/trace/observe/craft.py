"""Probe packets built with `struct`, byte for byte what `inject.build_probe` builds with scapy for TCP, UDP
and ICMP: importing scapy costs ~0.45 s, half of a whole trace's budget when `netsim trace` starts cold.
SCTP (CRC32c checksum) is left to scapy.

Layouts: RFC 791 (IPv4 header; the kernel fills in the header checksum of an IP_HDRINCL packet anyway,
net/ipv4/raw.c raw_send_hdrinc, but we compute it so the bytes are complete), RFC 9293 (TCP with one MSS
option), RFC 768 (UDP), RFC 792 (ICMP echo); transport checksums over the RFC 768/9293 pseudo-header.
"""

from __future__ import annotations

import ipaddress
import secrets
import struct

from netsim.trace.observe.tag import TraceTag

DEFAULT_TTL = 64


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_header(tag: TraceTag, src: str, dst: str, proto: int, length: int, ttl: int) -> bytes:
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, tag.ip_id, 0x4000, ttl, proto, 0, s, d)
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:]


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    return (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!BBH", 0, proto, length)
    )


def build(
    tag: TraceTag,
    src: str,
    dst: str,
    dport: int | None = None,
    *,
    ttl: int = DEFAULT_TTL,
    payload: bytes = b"",
    seq: int | None = None,
) -> bytes:
    """The IPv4 bytes of a TCP SYN, UDP datagram or ICMP echo request carrying the tag (pure)."""
    if tag.proto == "tcp":
        if not dport:
            raise ValueError("a tcp probe needs a destination port")
        seq = secrets.randbits(32) if seq is None else seq
        opts = struct.pack("!BBH", 2, 4, 1460)  # MSS 1460
        seg = struct.pack(
            "!HHIIBBHHH", tag.sport, dport, seq, 0, (5 + len(opts) // 4) << 4, 0x02, 64240, 0, 0
        )
        seg += opts + payload
        csum = checksum(_pseudo(src, dst, 6, len(seg)) + seg)
        seg = seg[:16] + struct.pack("!H", csum) + seg[18:]
        return _ip_header(tag, src, dst, 6, len(seg), ttl) + seg
    if tag.proto == "udp":
        if not dport:
            raise ValueError("a udp probe needs a destination port")
        dgram = struct.pack("!HHHH", tag.sport, dport, 8 + len(payload), 0) + payload
        csum = checksum(_pseudo(src, dst, 17, len(dgram)) + dgram) or 0xFFFF
        dgram = dgram[:6] + struct.pack("!H", csum) + dgram[8:]
        return _ip_header(tag, src, dst, 17, len(dgram), ttl) + dgram
    if tag.proto == "icmp":
        msg = struct.pack("!BBHHH", 8, 0, 0, tag.sport, 1) + payload
        msg = msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]
        return _ip_header(tag, src, dst, 1, len(msg), ttl) + msg
    raise ValueError(f"{tag.proto} probes are built with scapy (inject.build_probe)")
