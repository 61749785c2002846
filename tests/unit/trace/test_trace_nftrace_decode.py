"""NFT_MSG_TRACE decoding from messages built the way the kernel builds them (nf_tables_trace.c)."""

from __future__ import annotations

import struct

from scapy.layers.inet import IP, TCP

from netsim.kernel.nlcodec import NFGEN_HDR, attrs, messages, nla, nlmsg
from netsim.trace.observe.nftrace import (
    NFTA_TRACE_CHAIN,
    NFTA_TRACE_CT_DIRECTION,
    NFTA_TRACE_CT_STATE,
    NFTA_TRACE_ID,
    NFTA_TRACE_IIF,
    NFTA_TRACE_MARK,
    NFTA_TRACE_NETWORK_HEADER,
    NFTA_TRACE_NFPROTO,
    NFTA_TRACE_POLICY,
    NFTA_TRACE_RULE_HANDLE,
    NFTA_TRACE_TABLE,
    NFTA_TRACE_TRANSPORT_HEADER,
    NFTA_TRACE_TYPE,
    NFTA_TRACE_VERDICT,
    NFTA_VERDICT_CHAIN,
    NFTA_VERDICT_CODE,
    TRACE_MSG_TYPE,
    TraceEvent,
    decode_trace_messages,
    group_by_trace_id,
)

NLA_F_NESTED = 0x8000


def be32(v: int) -> bytes:
    return struct.pack("!I", v)


def trace_msg(*, table="nat", chain="PREROUTING", kind=3, trace_id=0xDEADBEEF, handle=None, verdict=None,
              target=None, policy=None, family=2, extra=b"") -> bytes:
    body = nla(NFTA_TRACE_NFPROTO, be32(family)) + nla(NFTA_TRACE_TYPE, be32(kind))
    body += nla(NFTA_TRACE_ID, be32(trace_id))
    body += nla(NFTA_TRACE_CHAIN, chain.encode() + b"\0") + nla(NFTA_TRACE_TABLE, table.encode() + b"\0")
    if handle is not None:
        body += nla(NFTA_TRACE_RULE_HANDLE, struct.pack("!Q", handle))
    if verdict is not None:
        inner = nla(NFTA_VERDICT_CODE, struct.pack("!i", verdict))
        if target:
            inner += nla(NFTA_VERDICT_CHAIN, target.encode() + b"\0")
        body += nla(NFTA_TRACE_VERDICT | NLA_F_NESTED, inner)
    if policy is not None:
        body += nla(NFTA_TRACE_POLICY, be32(policy))
    return nlmsg(TRACE_MSG_TYPE, NFGEN_HDR.pack(family, 0, 0) + body + extra)


def test_rule_event_with_jump_and_packet():
    pkt = bytes(IP(src="10.252.1.2", dst="10.252.9.9", id=4660) / TCP(sport=40000, dport=80, flags="S"))
    extra = (nla(NFTA_TRACE_NETWORK_HEADER, pkt[:20]) + nla(NFTA_TRACE_TRANSPORT_HEADER, pkt[20:40]) +
             nla(NFTA_TRACE_IIF, be32(7)) + nla(NFTA_TRACE_MARK, be32(0x4000)) +
             nla(NFTA_TRACE_CT_STATE, be32(8)) + nla(NFTA_TRACE_CT_DIRECTION, b"\0"))
    [e] = decode_trace_messages(trace_msg(handle=3, verdict=-3, target="KUBE-SERVICES", extra=extra))
    assert (e.family, e.table, e.chain, e.type, e.handle) == ("ip", "nat", "PREROUTING", "rule", 3)
    assert (e.verdict, e.target, e.trace_id, e.iif, e.oif, e.mark) == ("jump", "KUBE-SERVICES", 0xDEADBEEF, 7, None,
                                                                      0x4000)
    assert (e.ct_state, e.ct_direction) == ("new", "original")
    assert e.packet.summary() == "tcp 10.252.1.2:40000 -> 10.252.9.9:80 [S] id=4660"
    assert e.describe() == ("trace id deadbeef ip nat PREROUTING rule handle 3 (verdict jump KUBE-SERVICES)")
    assert not e.end_of_chain and not e.decisive


def test_verdict_names_and_policy_event():
    msgs = (trace_msg(chain="FORWARD", table="filter", handle=9, verdict=0) +
            trace_msg(chain="FORWARD", table="filter", handle=10, verdict=1) +
            trace_msg(chain="KUBE-SVC-X", verdict=-5, kind=2) +
            trace_msg(chain="FORWARD", table="filter", verdict=-1) +
            trace_msg(chain="FORWARD", table="filter", kind=1, verdict=1, policy=1))
    drop, accept, ret, end, pol = decode_trace_messages(msgs)
    assert (drop.verdict, drop.decisive) == ("drop", True)
    assert (accept.verdict, accept.decisive) == ("accept", True)
    assert (ret.type, ret.verdict) == ("return", "return")
    assert end.end_of_chain and end.describe() == "trace id deadbeef ip filter FORWARD end of rules"
    assert (pol.type, pol.policy, pol.decisive) == ("policy", "accept", True)
    assert pol.describe() == "trace id deadbeef ip filter FORWARD policy accept"


def test_queue_verdict_keeps_low_byte_name_and_families():
    [q] = decode_trace_messages(trace_msg(verdict=(5 << 16) | 3))
    assert q.verdict == "queue"
    [inet] = decode_trace_messages(trace_msg(family=1))
    assert inet.family == "inet"


def test_other_messages_and_garbage_are_skipped():
    other = nlmsg(0x0A00, NFGEN_HDR.pack(2, 0, 0) + nla(1, b"x\0"))  # NFT_MSG_NEWTABLE
    good = trace_msg(handle=1, verdict=1)
    events = decode_trace_messages(other + good + b"\x01\x02")
    assert [e.handle for e in events] == [1]
    assert decode_trace_messages(b"") == []
    truncated = good[:-3]
    assert decode_trace_messages(truncated) == []  # a message cut short is not half-decoded


def test_attribute_walk_respects_padding_and_flags():
    data = nla(1, b"ab") + nla(2 | NLA_F_NESTED, nla(1, b"x")) + nla(3, b"")
    a = attrs(data)
    assert a[1] == b"ab" and attrs(a[2]) == {1: b"x"} and a[3] == b""
    assert [k for k, _f, _b in messages(nlmsg(5, b"1234") + nlmsg(6, b""))] == [5, 6]


def test_group_by_trace_id_keeps_order():
    events = [TraceEvent(1, "ip", "t", "a", "rule"), TraceEvent(2, "ip", "t", "b", "rule"),
              TraceEvent(1, "ip", "t", "c", "policy")]
    assert {k: [e.chain for e in v] for k, v in group_by_trace_id(events).items()} == {1: ["a", "c"], 2: ["b"]}


def test_tagged_only_keeps_whole_trace_ids_and_decisions_drop_markers():
    from netsim.trace.observe.nftrace import decisions, tagged_only
    from netsim.trace.observe.packet import PacketInfo
    from netsim.trace.observe.tag import TraceTag

    tag = TraceTag("tcp", 4660, 40000)
    mine = PacketInfo("1.1.1.1", "2.2.2.2", 6, 4660, 64, 60, sport=40000, dport=80)
    other = PacketInfo("1.1.1.1", "2.2.2.2", 6, 4661, 64, 60, sport=40001, dport=80)
    events = [
        TraceEvent(1, "ip", "netsim_trace", "prerouting", "rule", "continue", handle=2, packet=mine, tagging=True),
        TraceEvent(2, "ip", "nat", "PREROUTING", "rule", "accept", handle=3, packet=other),
        TraceEvent(1, "ip", "nat", "PREROUTING", "rule", "jump", target="X", handle=3, packet=mine),
        TraceEvent(1, "ip", "nat", "X", "rule", "accept", handle=4),
        TraceEvent(1, "ip", "filter", "FORWARD", "rule", "continue", packet=mine),
        TraceEvent(1, "ip", "filter", "FORWARD", "policy", policy="drop"),
    ]
    kept = tagged_only(events, tag)
    assert {e.trace_id for e in kept} == {1} and len(kept) == 5
    assert [(e.chain, e.outcome) for e in decisions(kept)] == [
        ("PREROUTING", "jump"), ("X", "accept"), ("FORWARD", "drop")]
