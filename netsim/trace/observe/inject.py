"""Craft the probe packet with scapy and send it from inside the source namespace.

The packet goes out through a raw IPv4 socket (IPPROTO_RAW, which implies IP_HDRINCL: we supply the IP
header, so the IP ID carries the trace tag) opened inside the namespace with `Kernel.call_in`; the kernel
routes it and runs the OUTPUT hooks as for any locally generated packet (net/ipv4/raw.c,
raw_send_hdrinc). Its source address is the one the namespace's routing would pick (asked with a
connected UDP socket), so replies come back and transport checksums are right.
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass

from netsim.kernel.api import Kernel, KernelError
from netsim.trace.observe.tag import TraceTag

DEFAULT_TTL = 64


@dataclass(frozen=True)
class Probe:
    """What was sent: the tag, the addresses, and the exact bytes (for pcap and comparison)."""

    ns: str
    tag: TraceTag
    src: str
    dst: str
    dport: int | None
    raw: bytes
    sent_at: float  # time.time() right before sendto


def build_probe(tag: TraceTag, src: str, dst: str, dport: int | None = None, *, ttl: int = DEFAULT_TTL,
                payload: bytes = b"") -> bytes:
    """The IPv4 packet bytes of a TCP SYN, UDP datagram, ICMP echo request or SCTP INIT (pure)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.sctp import SCTP, SCTPChunkInit

    ip = IP(src=src, dst=dst, id=tag.ip_id, ttl=ttl, flags="DF")
    if tag.proto != "icmp" and not dport:
        raise ValueError(f"a {tag.proto} probe needs a destination port")
    if tag.proto == "tcp":
        pkt = ip / TCP(sport=tag.sport, dport=dport, flags="S", seq=secrets.randbits(32), window=64240,
                       options=[("MSS", 1460)])
    elif tag.proto == "udp":
        pkt = ip / UDP(sport=tag.sport, dport=dport)
    elif tag.proto == "sctp":
        pkt = ip / SCTP(sport=tag.sport, dport=dport, tag=0) / SCTPChunkInit(
            init_tag=1 + secrets.randbits(31), a_rwnd=106496, n_out_streams=10, n_in_streams=10,
            init_tsn=secrets.randbits(32))
    else:
        pkt = ip / ICMP(type=8, id=tag.sport, seq=1)
    if payload:
        pkt = pkt / payload
    return bytes(pkt)


def source_address(kernel: Kernel, ns: str, dst: str) -> str:
    """The source address `ns` would use towards `dst` (connect() on UDP sends nothing)."""
    def _ask() -> str:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((dst, 9))
            return s.getsockname()[0]
    try:
        return kernel.call_in(ns, _ask)
    except OSError as exc:
        raise KernelError(f"{ns}: no route to {dst}: {exc.strerror}", exc.errno) from None


def send_raw(kernel: Kernel, ns: str, dst: str, packet: bytes) -> float:
    """Send IPv4 `packet` (with its header) from inside `ns`; returns the send time (time.time())."""
    def _send() -> float:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
            at = time.time()
            s.sendto(packet, (dst, 0))
            return at
    try:
        return kernel.call_in(ns, _send)
    except OSError as exc:
        raise KernelError(f"{ns}: sending the probe to {dst} failed: {exc.strerror}", exc.errno) from None


def inject_probe(kernel: Kernel, ns: str, dst: str, tag: TraceTag, dport: int | None = None, *,
                 src: str | None = None, ttl: int = DEFAULT_TTL, payload: bytes = b"") -> Probe:
    """Build the tagged probe for `tag.proto` and send it from `ns` towards `dst`."""
    src = src or source_address(kernel, ns, dst)
    raw = build_probe(tag, src, dst, dport, ttl=ttl, payload=payload)
    at = send_raw(kernel, ns, dst, raw)
    return Probe(ns=ns, tag=tag, src=src, dst=dst, dport=dport, raw=raw, sent_at=at)
