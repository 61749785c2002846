"""Header decoding of probe packets and (VXLAN) frames, checked against packets scapy builds."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP, SCTPChunkInit
from scapy.layers.vxlan import VXLAN

from netsim.trace.observe.packet import decode_frame, decode_ipv4


def test_tcp_syn_fields():
    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2", id=4660, ttl=63, tos=0x28) /
                TCP(sport=40000, dport=80, flags="S"))
    info = decode_ipv4(raw)
    assert (info.src, info.dst, info.proto_name, info.ip_id, info.ttl) == ("10.0.0.1", "10.0.0.2", "tcp", 4660, 63)
    assert (info.sport, info.dport, info.tcp_flags, info.dscp) == (40000, 80, "S", 0x0A)
    assert info.length == len(raw)
    assert info.summary() == "tcp 10.0.0.1:40000 -> 10.0.0.2:80 [S] id=4660"


def test_transport_header_given_separately_as_in_trace_events():
    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2", id=7) / UDP(sport=5000, dport=53))
    info = decode_ipv4(raw[:20], raw[20:28])
    assert (info.proto_name, info.sport, info.dport, info.tcp_flags) == ("udp", 5000, 53, None)


def test_icmp_echo_and_sctp():
    icmp = decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", id=9) / ICMP(type=8, id=777, seq=1)))
    assert (icmp.icmp_type, icmp.icmp_code, icmp.icmp_id, icmp.sport) == (8, 0, 777, None)
    sctp = decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", id=9) / SCTP(sport=3868, dport=3869) /
                             SCTPChunkInit()))
    assert (sctp.proto_name, sctp.sport, sctp.dport) == ("sctp", 3868, 3869)


def test_not_ipv4_or_truncated():
    assert decode_ipv4(b"") is None
    assert decode_ipv4(b"\x60" + b"\0" * 39) is None  # IPv6
    assert decode_ipv4(b"\x45" + b"\0" * 10) is None


def test_non_first_fragment_has_no_ports():
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2", frag=100, proto=6) / (b"\x01" * 20))
    info = decode_ipv4(raw)
    assert info.proto_name == "tcp" and info.sport is None


def test_plain_frame():
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
                  IP(src="10.0.0.1", dst="10.0.0.2", id=5) / TCP(sport=1, dport=2))
    info = decode_frame(frame)
    assert (info.src_mac, info.dst_mac, info.vni, info.inner) == ("02:00:00:00:00:01", "02:00:00:00:00:02", None, None)
    assert info.packet is info.outer and info.packet.dport == 2


def test_vxlan_frame_outer_vni_inner():
    inner = Ether(src="0a:00:00:00:00:01", dst="0a:00:00:00:00:02") / IP(
        src="10.244.1.2", dst="10.244.2.3", id=4242) / TCP(sport=45000, dport=8080, flags="S")
    frame = bytes(Ether() / IP(src="172.18.0.2", dst="172.18.0.3", id=1) / UDP(sport=33333, dport=8472) /
                  VXLAN(vni=1, flags=0x08) / inner)
    info = decode_frame(frame)
    assert (info.outer.src, info.outer.dst, info.outer.proto_name, info.outer.dport) == (
        "172.18.0.2", "172.18.0.3", "udp", 8472)
    assert info.vni == 1
    assert (info.inner_src_mac, info.inner.src, info.inner.dst, info.inner.ip_id, info.inner.sport) == (
        "0a:00:00:00:00:01", "10.244.1.2", "10.244.2.3", 4242, 45000)
    assert info.packet is info.inner


def test_vxlan_port_list_is_respected():
    frame = bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=4789) / VXLAN(vni=7) /
                  Ether() / IP(src="3.3.3.3", dst="4.4.4.4"))
    assert decode_frame(frame).vni == 7
    assert decode_frame(frame, vxlan_ports=(8472,)).vni is None


def test_arp_frame_has_no_ipv4():
    frame = bytes(Ether(type=0x0806) / (b"\0" * 28))
    assert decode_frame(frame).packet is None
    assert decode_frame(b"\0" * 5) is None
