"""Stale UDP conntrack entries (netsim.proxy.conntrack), as kube-proxy's CleanStaleEntries decides."""

from __future__ import annotations

from netsim.proxy.conntrack import Flow, parse_flows, stale_deletions, udp_frontends
from netsim.proxy.model import Endpoint, ServicePort

LISTING = """\
udp      17 29 src=172.18.0.2 dst=10.96.0.2 sport=42302 dport=53 src=10.244.0.4 dst=10.244.0.1 sport=5353 dport=42738 mark=0 use=1
udp      17 23 src=10.244.0.1 dst=10.244.0.4 sport=46425 dport=5353 [UNREPLIED] src=10.244.0.4 dst=10.244.0.1 sport=5353 dport=46425 mark=0 use=1
udp      17 29 src=10.244.0.3 dst=10.96.0.2 sport=40053 dport=53 src=10.244.1.3 dst=10.244.0.3 sport=5353 dport=40053 mark=0 use=1
udp      17 29 src=203.0.113.10 dst=172.18.0.2 sport=5000 dport=30053 src=10.244.1.3 dst=172.18.0.2 sport=5353 dport=5000 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.
"""

DNS = ServicePort("default", "dns", protocol="UDP", cluster_ip="10.96.0.2", port=53, node_port=30053,
                  external_ips=["172.18.100.10"])


def test_parse_keeps_original_destination_and_reply_source() -> None:
    flows = parse_flows(LISTING)
    assert flows[0] == Flow("10.96.0.2", 53, "10.244.0.4")
    assert flows[1] == Flow("10.244.0.4", 5353, "10.244.0.4")
    assert len(flows) == 4  # the summary line is not a flow


def test_flows_to_a_gone_endpoint_are_deleted() -> None:
    # 10.244.1.3 (udp-b) went away; 10.244.0.4 still serves.
    fronts = udp_frontends([DNS], {DNS.key: [Endpoint("10.244.0.4", 5353, "node-1")]})
    got = stale_deletions(parse_flows(LISTING), fronts)
    assert got == [
        ["-p", "udp", "--orig-dst", "10.96.0.2", "--orig-port-dst", "53", "--reply-src", "10.244.1.3"],
        ["-p", "udp", "--orig-port-dst", "30053", "--reply-src", "10.244.1.3"],
    ]
    assert fronts.by_ip_port[("172.18.100.10", 53)] == {"10.244.0.4"}


def test_not_serving_endpoints_do_not_count_and_empty_services_are_left_alone() -> None:
    fronts = udp_frontends([DNS], {DNS.key: [Endpoint("10.244.0.4", 5353, serving=False)]})
    assert not fronts and stale_deletions(parse_flows(LISTING), fronts) == []


def test_tcp_services_are_ignored() -> None:
    web = ServicePort("default", "web", cluster_ip="10.96.0.2", port=53)
    assert not udp_frontends([web], {web.key: [Endpoint("10.244.9.9", 80)]})
