"""The one conntrack text reader (netsim.parsers.conntrack), covering what trace (tuples, NAT, state,
events, ICMP ids) and kube-proxy's stale UDP cleanup (original destination, reply source) need."""

from __future__ import annotations

from netsim.parsers.conntrack import CtEntry, CtTuple, parse_conntrack_line, parse_conntrack_output

LISTING = """\
udp      17 29 src=172.18.0.2 dst=10.96.0.2 sport=42302 dport=53 src=10.244.0.4 dst=10.244.0.1 sport=5353 dport=42738 mark=0 use=1
udp      17 23 src=10.244.0.1 dst=10.244.0.4 sport=46425 dport=5353 [UNREPLIED] src=10.244.0.4 dst=10.244.0.1 sport=5353 dport=46425 mark=0 use=1
icmp     1 29 src=10.252.1.2 dst=10.252.9.9 type=8 code=0 id=77 src=10.252.2.2 dst=10.252.1.2 type=0 code=0 id=77 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.
"""


def test_udp_dump_original_destination_and_reply_source():
    dns, direct, icmp = parse_conntrack_output(LISTING)  # the summary line is no entry
    assert (dns.original.dst, dns.original.dport, dns.reply.src) == ("10.96.0.2", 53, "10.244.0.4")
    assert dns.dnat and dns.snat and dns.translated_dst == ("10.244.0.4", 5353)
    assert direct.flags == frozenset({"UNREPLIED"}) and not direct.dnat
    assert icmp.proto == "icmp" and icmp.original.icmp_id == 77 and icmp.original.sport is None


def test_extended_output_state_zone_id_and_events():
    e = parse_conntrack_line("ipv4     2 tcp      6 431999 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 "
                             "src=3.3.3.3 dst=1.1.1.1 sport=8 dport=1 [ASSURED] mark=16384 zone=3 id=99 use=1")
    assert e == CtEntry("tcp", CtTuple("1.1.1.1", "2.2.2.2", 1, 2), CtTuple("3.3.3.3", "1.1.1.1", 8, 1),
                        state="ESTABLISHED", timeout=431999, flags=frozenset({"ASSURED"}), mark=16384, zone=3,
                        id=99)
    ev = parse_conntrack_line("[DESTROY] tcp      6 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 [UNREPLIED] "
                              "src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1")
    assert ev is not None and ev.event == "destroy" and ev.timeout is None


def test_what_is_not_an_entry():
    assert parse_conntrack_line("garbage") is None
    assert parse_conntrack_line("tcp 6 10 CLOSE src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2") is None  # one tuple
    assert parse_conntrack_output("") == []


def test_fields_before_conversion():
    from netsim.parsers.conntrack import iter_entries, split_entry
    f = split_entry("[NEW] udp 17 30 src=1.1.1.1 dst=2.2.2.2 sport=5 dport=53 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 "
                    "sport=53 dport=5 id=7")
    assert f is not None and (f.event, f.proto, f.protonum, f.timeout, f.state) == ("new", "udp", "17", "30", None)
    assert f.original == {"src": "1.1.1.1", "dst": "2.2.2.2", "sport": "5", "dport": "53"}
    assert f.reply["src"] == "2.2.2.2" and f.extra == {"id": "7"} and f.flags == {"UNREPLIED"}
    assert [e.reply["src"] for e in iter_entries(LISTING)] == ["10.244.0.4", "10.244.0.4", "10.252.2.2"]
