"""Conntrack entries from `conntrack -L/-E` text and from ctnetlink messages."""

from __future__ import annotations

import ipaddress
import struct

from netsim.kernel.nlcodec import nla, nlmsg
from netsim.parsers.conntrack import parse_conntrack_line, parse_conntrack_output
from netsim.trace.observe.conntrack import (
    CTA_ID,
    CTA_IP_V4_DST,
    CTA_IP_V4_SRC,
    CTA_PROTO_DST_PORT,
    CTA_PROTO_ICMP_ID,
    CTA_PROTO_ICMP_TYPE,
    CTA_PROTO_NUM,
    CTA_PROTO_SRC_PORT,
    CTA_PROTOINFO,
    CTA_PROTOINFO_TCP,
    CTA_PROTOINFO_TCP_STATE,
    CTA_STATUS,
    CTA_TUPLE_IP,
    CTA_TUPLE_ORIG,
    CTA_TUPLE_PROTO,
    CTA_TUPLE_REPLY,
    NLM_F_CREATE,
    decode_ct_messages,
    flow_entries,
)
from netsim.trace.observe.tag import TraceTag

NESTED = 0x8000

DUMP = """\
tcp      6 117 SYN_SENT src=10.252.1.2 dst=10.252.9.9 sport=40000 dport=80 [UNREPLIED] src=10.252.2.2 dst=10.252.1.2 sport=8080 dport=40000 mark=0 use=1
udp      17 29 src=10.244.0.5 dst=203.0.113.10 sport=5000 dport=53 src=203.0.113.10 dst=172.18.0.2 sport=53 dport=61000 [ASSURED] mark=16384 zone=3 use=1
icmp     1 29 src=10.252.1.2 dst=10.252.9.9 type=8 code=0 id=77 src=10.252.2.2 dst=10.252.1.2 type=0 code=0 id=77 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.
"""


def test_dump_lines():
    tcp, udp, icmp = parse_conntrack_output(DUMP)
    assert (tcp.proto, tcp.timeout, tcp.state, tcp.flags) == ("tcp", 117, "SYN_SENT", frozenset({"UNREPLIED"}))
    assert str(tcp.original) == "10.252.1.2:40000 -> 10.252.9.9:80"
    assert tcp.dnat and not tcp.snat and tcp.translated_dst == ("10.252.2.2", 8080)
    assert (udp.state, udp.mark, udp.zone, udp.flags) == (None, 16384, 3, frozenset({"ASSURED"}))
    assert udp.snat and not udp.dnat and udp.translated_src == ("172.18.0.2", 61000)
    assert (icmp.original.icmp_type, icmp.original.icmp_id, icmp.reply.icmp_type) == (8, 77, 0)
    assert icmp.dnat and icmp.original.sport is None
    assert str(icmp.original) == "10.252.1.2 -> 10.252.9.9 id=77"


def test_extended_and_event_forms():
    e = parse_conntrack_line("ipv4     2 tcp      6 431999 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 "
                             "src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 [ASSURED] mark=0 use=1")
    assert (e.proto, e.state, e.dnat, e.snat) == ("tcp", "ESTABLISHED", False, False)
    ev = parse_conntrack_line("[DESTROY] tcp      6 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 [UNREPLIED] "
                              "src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 id=1234")
    assert (ev.event, ev.timeout, ev.state, ev.id) == ("destroy", None, None, 1234)
    assert parse_conntrack_line("garbage") is None
    assert parse_conntrack_line("tcp 6 10 CLOSE src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2") is None


def test_matches_tag():
    tcp, udp, icmp = parse_conntrack_output(DUMP)
    assert tcp.matches(TraceTag("tcp", 5, 40000)) and not tcp.matches(TraceTag("udp", 5, 40000))
    assert icmp.matches(TraceTag("icmp", 5, 77)) and not icmp.matches(TraceTag("icmp", 5, 78))
    assert flow_entries([tcp, udp, icmp], TraceTag("udp", 1, 5000)) == [udp]


def _ip(a: str) -> bytes:
    return ipaddress.IPv4Address(a).packed


def _tuple(src, dst, num, sport=None, dport=None, icmp=None) -> bytes:
    ip = nla(CTA_IP_V4_SRC, _ip(src)) + nla(CTA_IP_V4_DST, _ip(dst))
    proto = nla(CTA_PROTO_NUM, bytes([num]))
    if icmp:
        proto += nla(CTA_PROTO_ICMP_ID, struct.pack("!H", icmp[0])) + nla(CTA_PROTO_ICMP_TYPE, bytes([icmp[1]]))
    else:
        proto += nla(CTA_PROTO_SRC_PORT, struct.pack("!H", sport)) + nla(CTA_PROTO_DST_PORT, struct.pack("!H", dport))
    return nla(CTA_TUPLE_IP | NESTED, ip) + nla(CTA_TUPLE_PROTO | NESTED, proto)


def _ct_msg(msg_type: int, flags: int, body: bytes) -> bytes:
    return nlmsg((1 << 8) | msg_type, struct.pack("=BBH", 2, 0, 0) + body, flags=flags)


def test_ctnetlink_new_and_destroy():
    body = (nla(CTA_TUPLE_ORIG | NESTED, _tuple("10.252.1.2", "10.252.9.9", 6, 40000, 80)) +
            nla(CTA_TUPLE_REPLY | NESTED, _tuple("10.252.2.2", "10.252.1.2", 6, 8080, 40000)) +
            nla(CTA_STATUS, struct.pack("!I", (1 << 3) | (1 << 5))) +
            nla(CTA_PROTOINFO | NESTED, nla(CTA_PROTOINFO_TCP | NESTED, nla(CTA_PROTOINFO_TCP_STATE, b"\x01"))) +
            nla(CTA_ID, struct.pack("!I", 99)))
    data = _ct_msg(0, NLM_F_CREATE, body) + _ct_msg(0, 0, body) + _ct_msg(2, 0, body) + _ct_msg(1, 0, body)
    new, update, destroy = decode_ct_messages(data)  # message type 1 (GET) is ignored
    assert (new.event, update.event, destroy.event) == ("new", "update", "destroy")
    assert (new.proto, new.state, new.id) == ("tcp", "SYN_SENT", 99)
    assert new.flags == frozenset({"CONFIRMED", "DST_NAT"})
    assert new.dnat and new.translated_dst == ("10.252.2.2", 8080)


def test_ctnetlink_icmp_and_incomplete():
    body = (nla(CTA_TUPLE_ORIG | NESTED, _tuple("1.1.1.1", "2.2.2.2", 1, icmp=(77, 8))) +
            nla(CTA_TUPLE_REPLY | NESTED, _tuple("2.2.2.2", "1.1.1.1", 1, icmp=(77, 0))))
    [e] = decode_ct_messages(_ct_msg(0, NLM_F_CREATE, body))
    assert (e.proto, e.original.icmp_id, e.original.icmp_type, e.reply.icmp_type) == ("icmp", 77, 8, 0)
    assert decode_ct_messages(_ct_msg(0, NLM_F_CREATE, nla(CTA_STATUS, b"\0\0\0\0"))) == []
