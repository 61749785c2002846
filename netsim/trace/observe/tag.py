"""The distinctive mark of the one packet a trace follows.

A traced packet crosses DNAT (destination rewritten), SNAT/masquerade (source rewritten, rarely the
port) and VXLAN encapsulation (new outer header; the inner one is untouched). The fields that survive all
of that are the IPv4 identification, the protocol, and the source port (ICMP: the echo identifier), so
the tag is those three. The IP ID must be non-zero: the kernel replaces a zero ID of a raw packet sent
with IP_HDRINCL (net/ipv4/raw.c, raw_send_hdrinc).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from netsim.trace.observe.packet import PROTO_NUMBERS, PacketInfo

PROTOCOLS = ("tcp", "udp", "sctp", "icmp")


@dataclass(frozen=True)
class TraceTag:
    """`proto` one of tcp/udp/sctp/icmp; `sport` is the source port, or the ICMP echo id for icmp."""

    proto: str
    ip_id: int
    sport: int

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise ValueError(f"protocol {self.proto!r} is not one of {', '.join(PROTOCOLS)}")
        if not 1 <= self.ip_id <= 0xFFFF:
            raise ValueError(f"IP ID {self.ip_id} must be 1..65535 (0 is rewritten by the kernel)")
        if not 1 <= self.sport <= 0xFFFF:
            raise ValueError(f"source port / ICMP id {self.sport} must be 1..65535")

    @classmethod
    def random(cls, proto: str) -> TraceTag:
        """A fresh tag; source ports from the upper half of the ephemeral range."""
        return cls(proto, 1 + secrets.randbelow(0xFFFF), 49152 + secrets.randbelow(16384))

    @property
    def proto_num(self) -> int:
        return PROTO_NUMBERS[self.proto]

    def nft_match(self) -> str:
        """The nft rule match for the tagged packet (family ip)."""
        if self.proto == "icmp":
            return f"ip id {self.ip_id} ip protocol icmp icmp type echo-request icmp id {self.sport}"
        return f"ip id {self.ip_id} ip protocol {self.proto} {self.proto} sport {self.sport}"

    def matches(self, pkt: PacketInfo | None) -> bool:
        """True for the tagged packet, before or after NAT (not for replies: they carry other IDs)."""
        if pkt is None or pkt.proto != self.proto_num or pkt.ip_id != self.ip_id:
            return False
        if self.proto == "icmp":
            return pkt.icmp_type == 8 and pkt.icmp_id == self.sport
        return pkt.sport == self.sport
