"""Pure decoding of the headers a tracer sees: IPv4 + TCP/UDP/SCTP/ICMP, Ethernet, VXLAN.

Kept tiny and dependency-free on purpose: the same decoder reads the header bytes the kernel attaches to
nftables trace events (network and transport header in separate attributes) and the frames an AF_PACKET
socket captures, where a VXLAN frame carries a second Ethernet/IPv4 packet inside (RFC 7348 section 5:
outer Ethernet, outer IPv4, outer UDP, 8-byte VXLAN header with the I flag and a 24-bit VNI).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}
PROTO_NUMBERS = {v: k for k, v in PROTO_NAMES.items()}
ETH_P_IP = 0x0800
ETH_P_8021Q = 0x8100
VXLAN_PORTS = (4789, 8472)  # IANA port (calico) and the Linux default port (flannel)
TCP_FLAG_NAMES = "FSRPAUEC"  # bit 0 .. bit 7


@dataclass(frozen=True)
class PacketInfo:
    """The fields of an IPv4 packet a trace reports; ports/ICMP fields are None when not present."""

    src: str
    dst: str
    proto: int
    ip_id: int
    ttl: int
    length: int
    dscp: int = 0
    sport: int | None = None
    dport: int | None = None
    tcp_flags: str | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    def summary(self) -> str:
        """One line, `tcp 10.0.0.1:40000 -> 10.0.0.2:80 [S] id=4660`."""
        if self.sport is not None:
            flags = f" [{self.tcp_flags}]" if self.tcp_flags else ""
            return (f"{self.proto_name} {self.src}:{self.sport} -> {self.dst}:{self.dport}{flags} "
                    f"id={self.ip_id}")
        if self.icmp_type is not None:
            return (f"{self.proto_name} {self.src} -> {self.dst} type={self.icmp_type} code={self.icmp_code} "
                    f"icmp_id={self.icmp_id} id={self.ip_id}")
        return f"{self.proto_name} {self.src} -> {self.dst} id={self.ip_id}"


def tcp_flag_text(flags: int) -> str:
    """TCP flags the way tcpdump prints them (S, SA, R, ...), only the classic six + ECE/CWR."""
    return "".join(name for bit, name in enumerate(TCP_FLAG_NAMES) if flags & (1 << bit))


def decode_ipv4(network: bytes, transport: bytes | None = None) -> PacketInfo | None:
    """Decode an IPv4 header and, when available, the start of its transport header.

    `transport` defaults to the bytes after the IP header in `network` (a whole packet); nftables trace
    events pass it separately. Returns None for anything that is not a well-formed IPv4 header.
    """
    if len(network) < 20 or network[0] >> 4 != 4:
        return None
    ihl = (network[0] & 0x0F) * 4
    if ihl < 20:
        return None
    tos, total, ip_id, frag, ttl, proto = struct.unpack_from("!xBHHHBB", network, 0)
    src = str(ipaddress.IPv4Address(network[12:16]))
    dst = str(ipaddress.IPv4Address(network[16:20]))
    if transport is None:
        transport = network[ihl:]
    info = PacketInfo(src=src, dst=dst, proto=proto, ip_id=ip_id, ttl=ttl, length=total, dscp=tos >> 2)
    if frag & 0x1FFF:  # a non-first fragment has no transport header
        return info
    fields: dict = {}
    if proto in (6, 17, 132) and len(transport) >= 4:
        fields["sport"], fields["dport"] = struct.unpack_from("!HH", transport, 0)
        if proto == 6 and len(transport) >= 14:
            fields["tcp_flags"] = tcp_flag_text(transport[13])
    elif proto == 1 and len(transport) >= 2:
        fields["icmp_type"], fields["icmp_code"] = transport[0], transport[1]
        if transport[0] in (0, 8, 13, 14) and len(transport) >= 6:  # echo / timestamp carry an id
            fields["icmp_id"] = struct.unpack_from("!H", transport, 4)[0]
    return PacketInfo(**{**info.__dict__, **fields})


@dataclass(frozen=True)
class FrameInfo:
    """A decoded Ethernet frame: outer packet, and for VXLAN the VNI and the inner frame's packet."""

    src_mac: str
    dst_mac: str
    outer: PacketInfo | None
    vni: int | None = None
    inner_src_mac: str | None = None
    inner_dst_mac: str | None = None
    inner: PacketInfo | None = None

    @property
    def packet(self) -> PacketInfo | None:
        """The innermost IPv4 packet (the traced one, encapsulated or not)."""
        return self.inner if self.inner is not None else self.outer


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _ethernet(frame: bytes) -> tuple[str, str, int, bytes] | None:
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    if ethertype == ETH_P_8021Q and len(frame) >= 18:
        ethertype = struct.unpack_from("!H", frame, 16)[0]
        off = 18
    return _mac(frame[6:12]), _mac(frame[0:6]), ethertype, frame[off:]


def decode_frame(frame: bytes, vxlan_ports: tuple[int, ...] = VXLAN_PORTS) -> FrameInfo | None:
    """Decode an Ethernet frame; a UDP datagram to one of `vxlan_ports` is opened as VXLAN."""
    eth = _ethernet(frame)
    if eth is None:
        return None
    src_mac, dst_mac, ethertype, payload = eth
    if ethertype != ETH_P_IP:
        return FrameInfo(src_mac, dst_mac, None)
    outer = decode_ipv4(payload)
    if outer is None or outer.proto != 17 or outer.dport not in vxlan_ports:
        return FrameInfo(src_mac, dst_mac, outer)
    ihl = (payload[0] & 0x0F) * 4
    vx = payload[ihl + 8:]
    if len(vx) < 8 or not vx[0] & 0x08:  # the I flag says the VNI is valid
        return FrameInfo(src_mac, dst_mac, outer)
    vni = int.from_bytes(vx[4:7], "big")
    inner_eth = _ethernet(vx[8:])
    if inner_eth is None:
        return FrameInfo(src_mac, dst_mac, outer, vni=vni)
    isrc, idst, itype, ipayload = inner_eth
    inner = decode_ipv4(ipayload) if itype == ETH_P_IP else None
    return FrameInfo(src_mac, dst_mac, outer, vni=vni, inner_src_mac=isrc, inner_dst_mac=idst, inner=inner)
