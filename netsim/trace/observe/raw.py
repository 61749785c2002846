"""What observing one tagged packet collects (`RawObservation`), and which captured packets are answers to it.

Filled by `netsim.trace.observe.cluster.observe_path`, turned into the observed path by
`netsim.trace.report.observed.build_observed`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from netsim.trace.observe.capture import CapturedPacket
from netsim.trace.observe.conntrack import CtEntry
from netsim.trace.observe.inject import Probe
from netsim.trace.observe.nftrace import TraceEvent
from netsim.trace.observe.tag import TraceTag


def quoted_ip_id(frame: bytes) -> int | None:
    """The IP ID of the packet an ICMP error quotes (inner-most IPv4 of the frame, then ICMP + 8)."""
    off = 14
    if len(frame) < off + 20:
        return None
    ihl = (frame[off] & 0x0F) * 4
    if frame[off + 9] == 17 and len(frame) > off + ihl + 16:  # VXLAN: skip UDP 8 + VXLAN 8 + Ethernet 14
        off = off + ihl + 8 + 8 + 14
        if len(frame) < off + 20:
            return None
        ihl = (frame[off] & 0x0F) * 4
    q = off + ihl + 8
    if len(frame) < q + 6:
        return None
    return struct.unpack_from("!H", frame, q + 4)[0]


def reply_tuples(conntrack: dict[str, list[CtEntry]]) -> set[tuple]:
    """(src, sport, dst, dport) of every form a reply takes: each entry's reply tuple (as the server sends
    it) and the inverse of its original tuple (as the client receives it, NAT undone); for ICMP echo
    ("icmp", src, dst, id) of the reply tuple (masquerade --random-fully rewrites the echo id)."""
    out: set[tuple] = set()
    for entries in conntrack.values():
        for e in entries:
            out.add((e.reply.src, e.reply.sport, e.reply.dst, e.reply.dport))
            out.add((e.original.dst, e.original.dport, e.original.src, e.original.sport))
            if e.reply.icmp_id is not None:  # an echo reply on the far side of a masquerade: its new id
                out.add(("icmp", e.reply.src, e.reply.dst, e.reply.icmp_id))
    return out


def is_reply(pkt: CapturedPacket, tag: TraceTag, replies: set[tuple] = frozenset()) -> bool:
    p = pkt.info.packet
    if p is None or tag.matches(p):
        return False
    if p.proto == 1 and p.icmp_type in (3, 11):
        return quoted_ip_id(pkt.frame) == tag.ip_id
    if p.proto == 1:
        return tag.proto == "icmp" and p.icmp_type == 0 and (
            p.icmp_id == tag.sport or ("icmp", p.src, p.dst, p.icmp_id) in replies
        )
    if p.proto != tag.proto_num:
        return False
    return p.dport == tag.sport or (p.src, p.sport, p.dst, p.dport) in replies


@dataclass
class RawObservation:
    probe: Probe | None
    events: dict[str, list[TraceEvent]]
    conntrack: dict[str, list[CtEntry]]
    packets: list[CapturedPacket]
    elapsed: float
    error: str | None = None
    lost: list[str] = field(default_factory=list)
