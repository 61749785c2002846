"""The struct-built probes are byte-identical to scapy's (inject.build_probe) for TCP, UDP and ICMP."""

from __future__ import annotations

import pytest

from netsim.trace.observe import craft
from netsim.trace.observe.inject import build_probe
from netsim.trace.observe.tag import TraceTag


@pytest.mark.parametrize(
    "proto, dport, payload",
    [("tcp", 80, b""), ("udp", 53, b"\x12\x34query"), ("udp", 9, b"odd"), ("icmp", None, b"")],
)
def test_same_bytes_as_scapy(proto, dport, payload):
    from scapy.layers.inet import IP, TCP

    tag = TraceTag(proto, 4242, 40001)
    ours = craft.build(tag, "10.244.0.2", "10.96.0.10", dport, payload=payload, seq=7)
    theirs = build_probe(tag, "10.244.0.2", "10.96.0.10", dport, payload=payload)
    if proto == "tcp":  # scapy picked a random sequence number: put ours in and recompute
        p = IP(theirs)
        p[TCP].seq = 7
        del p[TCP].chksum
        theirs = bytes(p)
    assert ours == theirs


def test_sctp_is_left_to_scapy():
    with pytest.raises(ValueError):
        craft.build(TraceTag("sctp", 1, 2), "10.0.0.1", "10.0.0.2", 9)
