from __future__ import annotations

from netsim.trace.observe.nftrace import render_trace_table, render_trace_teardown
from netsim.trace.observe.tag import TraceTag


def test_trace_table_payload_is_atomic_and_hooks_before_conntrack():
    payload = render_trace_table(TraceTag("tcp", 4660, 40000))
    assert payload == (
        "add table ip netsim_trace\n"
        "delete table ip netsim_trace\n"
        "table ip netsim_trace {\n"
        "\tchain prerouting {\n"
        "\t\ttype filter hook prerouting priority -350; policy accept;\n"
        "\t\tip id 4660 ip protocol tcp tcp sport 40000 meta nftrace set 1\n"
        "\t}\n"
        "\tchain output {\n"
        "\t\ttype filter hook output priority -350; policy accept;\n"
        "\t\tip id 4660 ip protocol tcp tcp sport 40000 meta nftrace set 1\n"
        "\t}\n"
        "}\n")


def test_custom_table_and_teardown():
    payload = render_trace_table(TraceTag("icmp", 1, 2), table="tr2", priority=-400)
    assert "table ip tr2 {" in payload and "priority -400;" in payload
    assert "icmp type echo-request icmp id 2 meta nftrace set 1" in payload
    assert render_trace_teardown("tr2") == "add table ip tr2\ndelete table ip tr2\n"
