"""Probe bytes per protocol: tags in place, checksums right (scapy recomputes and must agree)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.sctp import SCTP, SCTPChunkInit

from netsim.trace.observe.inject import build_probe
from netsim.trace.observe.packet import decode_ipv4
from netsim.trace.observe.tag import TraceTag


def _checksums_ok(raw: bytes, layer) -> bool:
    pkt = IP(raw)
    got = (pkt[IP].chksum, pkt[layer].chksum)
    del pkt[IP].chksum
    del pkt[layer].chksum
    again = IP(bytes(pkt))
    return got == (again[IP].chksum, again[layer].chksum)


@pytest.mark.parametrize("proto,layer", [("tcp", TCP), ("udp", UDP), ("icmp", ICMP), ("sctp", SCTP)])
def test_probe_carries_tag_and_valid_checksums(proto, layer):
    tag = TraceTag(proto, 4660, 40000)
    raw = build_probe(tag, "10.252.1.2", "10.252.9.9", 80)
    info = decode_ipv4(raw)
    assert tag.matches(info)
    assert (info.src, info.dst, info.ttl) == ("10.252.1.2", "10.252.9.9", 64)
    assert _checksums_ok(raw, layer)


def test_protocol_specifics():
    syn = IP(build_probe(TraceTag("tcp", 1, 2), "1.1.1.1", "2.2.2.2", 443))
    assert syn[TCP].flags == "S" and syn[TCP].dport == 443 and syn[IP].flags == "DF"
    init = IP(build_probe(TraceTag("sctp", 1, 2), "1.1.1.1", "2.2.2.2", 3868))
    assert init[SCTP].tag == 0 and init.haslayer(SCTPChunkInit) and init[SCTPChunkInit].init_tag != 0
    echo = IP(build_probe(TraceTag("icmp", 1, 99), "1.1.1.1", "2.2.2.2", ttl=3))
    assert (echo[ICMP].type, echo[ICMP].id, echo[IP].ttl) == (8, 99, 3)
    udp = IP(build_probe(TraceTag("udp", 1, 2), "1.1.1.1", "2.2.2.2", 53, payload=b"hi"))
    assert bytes(udp[UDP].payload) == b"hi"


def test_port_required_for_port_protocols():
    with pytest.raises(ValueError):
        build_probe(TraceTag("tcp", 1, 2), "1.1.1.1", "2.2.2.2")
