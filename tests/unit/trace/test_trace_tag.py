from __future__ import annotations

import pytest

from netsim.trace.observe.packet import PacketInfo
from netsim.trace.observe.tag import TraceTag


def test_nft_match_per_protocol():
    assert TraceTag("tcp", 4660, 40000).nft_match() == "ip id 4660 ip protocol tcp tcp sport 40000"
    assert TraceTag("sctp", 1, 2).nft_match() == "ip id 1 ip protocol sctp sctp sport 2"
    assert TraceTag("icmp", 9, 77).nft_match() == \
        "ip id 9 ip protocol icmp icmp type echo-request icmp id 77"


@pytest.mark.parametrize("args", [("gre", 1, 1), ("tcp", 0, 1), ("tcp", 70000, 1), ("udp", 1, 0)])
def test_invalid_tags(args):
    with pytest.raises(ValueError):
        TraceTag(*args)


def test_random_tags_are_valid_and_differ():
    tags = {TraceTag.random("udp") for _ in range(20)}
    assert len(tags) > 1
    assert all(49152 <= t.sport < 65536 and t.ip_id > 0 for t in tags)


def test_matches_survives_nat_but_not_other_packets():
    tag = TraceTag("tcp", 4660, 40000)
    before = PacketInfo("10.0.0.1", "10.96.0.10", 6, 4660, 64, 60, sport=40000, dport=80)
    after_nat = PacketInfo("10.244.0.1", "10.244.1.5", 6, 4660, 63, 60, sport=40000, dport=8080)
    reply = PacketInfo("10.244.1.5", "10.244.0.1", 6, 0, 64, 60, sport=8080, dport=40000)
    other = PacketInfo("10.0.0.1", "10.96.0.10", 17, 4660, 64, 60, sport=40000, dport=80)
    assert tag.matches(before) and tag.matches(after_nat)
    assert not tag.matches(reply) and not tag.matches(other) and not tag.matches(None)
    icmp = TraceTag("icmp", 5, 77)
    assert icmp.matches(PacketInfo("a", "b", 1, 5, 64, 28, icmp_type=8, icmp_code=0, icmp_id=77))
    assert not icmp.matches(PacketInfo("a", "b", 1, 5, 64, 28, icmp_type=0, icmp_code=0, icmp_id=77))
