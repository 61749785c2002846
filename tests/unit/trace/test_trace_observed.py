"""Observed path from synthetic kernel reports (nft trace events, captures, conntrack), comparison with the
simulation, text/JSON rendering, and the loose tag that survives masquerade."""

from __future__ import annotations

import json
import struct

import trace_synthetic as S

from netsim.kernel.routes import vxlan_peer
from netsim.trace import hops as H
from netsim.trace.api import TraceReport
from netsim.trace.observe.capture import CapturedPacket
from netsim.trace.observe.conntrack import CtEntry, CtTuple
from netsim.trace.observe.nftrace import TraceEvent
from netsim.trace.observe.packet import FrameInfo, PacketInfo
from netsim.trace.observe.raw import RawObservation, is_reply, quoted_ip_id, reply_tuples
from netsim.trace.observe.rules import RuleInfo, rule_comment
from netsim.trace.report.compare import disagreements, pick_branch
from netsim.trace.report.observed import LooseTag, build_observed, order_namespaces
from netsim.trace.report.text import render_text
from netsim.trace.simulate.walk import simulate

TAG = LooseTag("tcp", 4242, 40000)
NA, NB = "netsim-t-node-node-a", "netsim-t-node-node-b"
POD_CLIENT, POD_WEB_B = "netsim-t-pod-default-client", "netsim-t-pod-default-web-b"


def pkt(src, dst, sport, dport, ttl=64, ip_id=4242, flags="S"):
    return PacketInfo(
        src=src, dst=dst, proto=6, ip_id=ip_id, ttl=ttl, length=60, sport=sport, dport=dport, tcp_flags=flags
    )


def ev(
    ns,
    table,
    chain,
    verdict="continue",
    *,
    target=None,
    text=None,
    comment=None,
    packet=None,
    iif=None,
    oif=None,
    tagging=False,
    type="rule",
    tid=1,
):
    rule = RuleInfo("ip", table, chain, 7, 1, text or "", iptables=text, comment=comment) if text else None
    return TraceEvent(
        trace_id=tid,
        family="ip",
        table=table,
        chain=chain,
        type=type,
        verdict=verdict,
        target=target,
        handle=7 if text or tagging else None,
        packet=packet,
        ns=ns,
        iif_name=iif,
        oif_name=oif,
        rule=rule,
        tagging=tagging,
    )


def cap(ns, direction, inner, vni=None, outer=None):
    return CapturedPacket(
        ns,
        "eth0",
        0,
        direction,
        b"",
        FrameInfo("a", "b", outer or inner, vni=vni, inner=inner if vni else None),
    )


def remote_raw(policy_drop: bool = False) -> RawObservation:
    sent = pkt("10.244.0.2", "10.96.0.20", 40000, 80)
    dnated = pkt("10.244.0.2", "10.244.1.5", 40000, 8080)
    a = [
        ev(NA, "netsim_trace", "prerouting", packet=sent, iif="cni0", tagging=True),
        ev(
            NA,
            "nat",
            "PREROUTING",
            "jump",
            target="KUBE-SERVICES",
            packet=sent,
            iif="cni0",
            text="-A PREROUTING -j KUBE-SERVICES",
            comment="kubernetes service portals",
        ),
        ev(
            NA,
            "nat",
            "KUBE-SERVICES",
            "jump",
            target="KUBE-SVC-WEB",
            text="-A KUBE-SERVICES ... -j KUBE-SVC-WEB",
            comment="default/web cluster IP",
        ),
        ev(
            NA,
            "nat",
            "KUBE-SEP-B",
            "accept",
            text="-A KUBE-SEP-B -p tcp -j DNAT --to-destination 10.244.1.5:8080",
            comment="default/web",
        ),
    ]
    if policy_drop:
        a += [
            ev(
                NA,
                "filter",
                "cali-fw-cali123",
                "jump",
                target="cali-po-xyz",
                packet=dnated,
                text="-A cali-fw-cali123 -j cali-po-xyz",
                comment="cali:aa Policy default/deny-out egress",
            ),
            ev(
                NA,
                "filter",
                "cali-fw-cali123",
                "drop",
                text="-A cali-fw-cali123 -m mark --mark 0x0/0x20000 -j DROP",
                comment="cali:bb End of tier default. Drop if no policies passed packet",
            ),
        ]
        return RawObservation(None, {NA: a}, {}, [cap(POD_CLIENT, "outgoing", sent)], 0.1)
    a += [
        ev(
            NA,
            "filter",
            "FORWARD",
            "accept",
            packet=dnated,
            iif="cni0",
            oif="flannel.1",
            text="-A FORWARD -j ACCEPT",
            comment="flanneld forward",
        )
    ]
    b = [
        ev(
            NB,
            "netsim_trace",
            "prerouting",
            packet=pkt("10.244.0.2", "10.244.1.5", 40000, 8080, ttl=63),
            iif="flannel.1",
            tagging=True,
        )
    ]
    outer = PacketInfo("172.18.0.2", "172.18.0.3", 17, 99, 64, 110, sport=5555, dport=8472)
    inner = pkt("10.244.0.2", "10.244.1.5", 40000, 8080, ttl=63)
    synack = pkt("10.244.1.5", "10.244.0.2", 8080, 40000, ip_id=0, flags="SA")
    packets = [
        cap(POD_CLIENT, "outgoing", sent),
        cap(NA, "outgoing", inner, 1, outer),
        cap(NB, "host", inner, 1, outer),
        cap(POD_WEB_B, "host", inner),
        cap(POD_WEB_B, "outgoing", synack),
        cap(POD_CLIENT, "host", pkt("10.96.0.20", "10.244.0.2", 80, 40000, ip_id=0, flags="SA")),
    ]
    ct = CtEntry(
        "tcp",
        CtTuple("10.244.0.2", "10.96.0.20", 40000, 80),
        CtTuple("10.244.1.5", "10.244.0.2", 8080, 40000),
    )
    return RawObservation(None, {NB: b, NA: a}, {NA: [ct]}, packets, 0.1)


def test_namespaces_are_ordered_by_falling_ttl():
    raw = remote_raw()
    assert order_namespaces(raw.events, POD_CLIENT) == [NA, NB]


def test_observed_remote_service_path_has_dnat_tunnel_delivery_and_answer():
    path = build_observed(S.view(), S.CLIENT, S.WEB_SVC, TAG, remote_raw())
    assert path.verdict == H.VERDICT_DELIVERED and path.endpoint == "default/web-b"
    assert path.tunnel == {"src": "172.18.0.2", "dst": "172.18.0.3", "vni": 1, "port": 8472}
    [lb] = [h for h in path.hops if h.component == H.LB]
    assert (
        lb.detail == "10.96.0.20:80 -> 10.244.1.5:8080 (default/web cluster IP)" and lb.chain == "KUBE-SEP-B"
    )
    assert [h.action for h in path.hops if h.component == H.TUNNEL and h.direction == "request"] == [
        H.ENCAPSULATED,
        H.DECAPSULATED,
    ]
    assert path.answered == "SYN-ACK"
    assert path.hops[-2].direction == "reply" and path.hops[-2].action == H.REPLIED
    assert path.hops[-1].action == H.RECEIVED and path.returned is True


def unobserved_endpoint_raw(answer_flags: str) -> RawObservation:
    """remote_raw as a trace sees it when the kernel picked an endpoint outside its scope (a Service past the
    simulator's walked branches): node-b and the pod are not watched, only the answer comes back."""
    raw = remote_raw()
    packets = [p for p in raw.packets if p.ns not in (NB, POD_WEB_B)]
    packets[-1] = cap(POD_CLIENT, "host", pkt("10.96.0.20", "10.244.0.2", 80, 40000, ip_id=0, flags=answer_flags))
    return RawObservation(None, {NA: raw.events[NA]}, raw.conntrack, packets, 0.1)


def test_a_packet_whose_arrival_was_not_watched_but_whose_answer_came_back_was_delivered():
    path = build_observed(S.view(), S.CLIENT, S.WEB_SVC, TAG, unobserved_endpoint_raw("SA"))
    assert path.verdict == H.VERDICT_DELIVERED and path.endpoint == "default/web-b"
    [delivery] = [h for h in path.hops if h.action == H.DELIVERED]
    assert delivery.endpoint == "default/web-b"
    assert delivery.detail == "to pod default/web-b (10.244.1.5:8080): not observed there, its SYN-ACK came back"
    assert path.hops[-1].action == H.RECEIVED and path.returned is True
    # A reset proves nothing about delivery (a node answers for a port nobody serves): still unreachable.
    path = build_observed(S.view(), S.CLIENT, S.WEB_SVC, TAG, unobserved_endpoint_raw("RA"))
    assert path.verdict == H.VERDICT_UNREACHABLE


def test_observed_policy_drop_names_the_policy_from_the_chain_comments():
    path = build_observed(S.view("calico"), S.CLIENT, S.WEB_SVC, TAG, remote_raw(policy_drop=True))
    assert path.verdict == H.VERDICT_DROPPED
    assert path.policy == {"namespace": "default", "name": "deny-out", "rule": None, "direction": "egress"}
    assert path.endpoint == "default/web-b"  # aimed at, from the DNAT
    assert path.hops[-1].chain == "cali-fw-cali123"


def test_simulation_and_observation_agree_on_the_branch_taken():
    branches = simulate(S.view(), S.CLIENT, S.WEB_SVC, 40000)
    observed = build_observed(S.view(), S.CLIENT, S.WEB_SVC, TAG, remote_raw())
    assert pick_branch(branches, observed).endpoint == "default/web-b"
    assert disagreements(branches, observed) == []


def test_disagreements_are_reported():
    branches = simulate(S.view(), S.CLIENT, S.WEB_SVC, 40000)
    observed = build_observed(S.view(), S.CLIENT, S.WEB_SVC, TAG, remote_raw())
    observed.tunnel = {"src": "172.18.0.2", "dst": "172.18.0.9", "vni": 1, "port": 8472}
    assert any(d.startswith("tunnel:") for d in disagreements(branches, observed))
    observed.endpoint, observed.endpoint_ip = "default/stranger", "10.244.9.9"
    assert any("not among the simulated" in d for d in disagreements(branches, observed))
    observed.verdict = H.VERDICT_DROPPED
    assert any(d.startswith("verdict:") for d in disagreements(branches, observed))


def test_report_text_and_json():
    branches = simulate(S.view(), S.CLIENT, S.WEB_SVC, 40000)
    observed = build_observed(S.view(), S.CLIENT, S.WEB_SVC, TAG, remote_raw())
    r = TraceReport(S.CLIENT, S.WEB_SVC, 40000, branches, observed, disagreements(branches, observed))
    data = json.loads(json.dumps(r.to_json()))
    assert data["verdict"] == "delivered" and data["agree"] is True
    assert {"simulated", "observed", "disagreements", "branches"} <= set(data)
    hop = data["observed"][0]
    assert {
        "node",
        "netns",
        "component",
        "action",
        "interface",
        "chain",
        "rule",
        "policy",
        "translated",
        "tunnel",
    } <= set(hop)
    text = render_text(r)
    assert "simulated (1 of 2 branches" in text and "observed:" in text and "agree" in text
    assert "Encapsulated" in text and "<- [pod default/web-b]" in text


def test_loose_tag_ignores_the_source_port_that_masquerade_rewrites():
    assert TAG.nft_match() == "ip id 4242 ip protocol tcp"
    assert TAG.matches(pkt("10.244.1.0", "10.244.1.5", 1234, 8080))
    assert not TAG.matches(pkt("10.244.1.0", "10.244.1.5", 1234, 8080, ip_id=1))


def test_replies_are_recognised_by_conntrack_tuples_and_icmp_quotes():
    ct = CtEntry(
        "tcp",
        CtTuple("203.0.113.10", "172.18.0.2", 40000, 30080),
        CtTuple("10.244.1.5", "10.244.0.0", 8080, 777),
    )
    tuples = reply_tuples({"n": [ct]})
    synack = cap("p", "outgoing", pkt("10.244.1.5", "10.244.0.0", 8080, 777, ip_id=0, flags="SA"))
    assert is_reply(synack, TAG, tuples)
    assert not is_reply(
        cap("p", "outgoing", pkt("10.244.1.5", "10.244.0.0", 8080, 778, ip_id=0)), TAG, tuples
    )
    quoted = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 4242, 0, 64, 6, 0, b"\x0a\0\0\x02", b"\x0a\x60\0\x1e")
    icmp = b"\x03\x03\0\0\0\0\0\0" + quoted + b"\0" * 8
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, b"\xac\x12\0\x02", b"\x0a\0\0\x02"
    )
    frame = b"\0" * 12 + b"\x08\x00" + ip + icmp
    assert quoted_ip_id(frame) == 4242


def test_rule_comment_fast_path_matches_shlex():
    spec = '-d 10.96.0.2/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j X'
    assert rule_comment(spec) == "default/web:http cluster IP"
    assert (
        rule_comment('-m comment --comment cali:abc -m comment --comment "End of tier"')
        == "cali:abc End of tier"
    )
    assert rule_comment("-j ACCEPT") is None


def test_gathering_stops_on_a_drop_or_an_answer_at_the_source():
    from netsim.trace.observe.cluster import _finished

    sent = cap(POD_CLIENT, "outgoing", pkt("10.244.0.2", "10.96.0.20", 40000, 80))
    assert not _finished({}, [sent], S.CLIENT, TAG)
    synack = cap(POD_CLIENT, "host", pkt("10.96.0.20", "10.244.0.2", 80, 40000, ip_id=0, flags="SA"))
    assert _finished({}, [sent, synack], S.CLIENT, TAG)
    drop = ev(NA, "filter", "KUBE-SERVICES", "drop", text="-A KUBE-SERVICES -j REJECT")
    assert _finished({NA: [drop]}, [sent], S.CLIENT, TAG)
    tagging_only = ev(NA, "netsim_trace", "prerouting", "drop", tagging=True)
    assert not _finished({NA: [tagging_only]}, [sent], S.CLIENT, TAG)


def test_view_routing_helpers():
    v = S.view()
    nv = v.node("node-a")
    assert nv.route_for("10.244.1.7").dev == "flannel.1"
    assert nv.route_for("10.244.0.7").dev == "cni0"
    assert nv.route_for("8.8.8.8").dst == "default"
    neigh, fdb = vxlan_peer(nv.neighs, nv.fdbs, "flannel.1", "10.244.1.0")
    assert neigh.mac == S.MAC_B and fdb.dst == "172.18.0.3"
    assert v.label_of(NA) == "node-a" and v.label_of(POD_WEB_B) == "pod default/web-b"
    assert v.kind_of("netsim-t-host-ext") == "host" and v.kind_of("netsim-t-fabric") == "fabric"
    v.proxy_loader = lambda name: ["172.18.255.1"] if name == "node-b" else []
    assert v.announcing_node("172.18.255.1") == "node-b"


def test_an_answer_that_never_reaches_the_source_contradicts_a_simulated_round_trip():
    branches = simulate(S.view(), S.CLIENT, S.WEB_SVC, 40000)
    raw = remote_raw()
    raw.packets = [p for p in raw.packets if not (p.ns == POD_CLIENT and p.direction == "host")]
    observed = build_observed(S.view(), S.CLIENT, S.WEB_SVC, TAG, raw)
    assert observed.verdict == H.VERDICT_DELIVERED and observed.answered == "SYN-ACK"
    assert observed.returned is False
    assert all(b.returned for b in branches)
    diffs = disagreements(branches, observed)
    assert "reply: simulated it reaches the source, observed no answer reached the source" in diffs
    r = TraceReport(S.CLIENT, S.WEB_SVC, 40000, branches, observed, diffs)
    assert r.to_json()["observedSummary"]["returned"] is False and not r.agree
    assert "no answer reaches the source" in render_text(r)


def test_an_echo_reply_whose_id_a_masquerade_rewrote_is_still_the_reply():
    tag = LooseTag("icmp", 4242, 777)
    reply = PacketInfo(src="10.244.1.5", dst="172.18.0.2", proto=1, ip_id=9, ttl=64, length=84, icmp_type=0,
                       icmp_id=31000)
    captured = cap(NA, "host", reply)
    ct = CtEntry("icmp", CtTuple("172.18.0.2", "10.244.1.5", icmp_type=8, icmp_id=777),
                 CtTuple("10.244.1.5", "172.18.0.2", icmp_type=0, icmp_id=31000))
    assert not is_reply(captured, tag)
    assert is_reply(captured, tag, reply_tuples({NA: [ct]}))


def test_a_trace_observes_the_namespaces_on_its_path_not_the_whole_cluster():
    """At 100 nodes and 10,000 pods, listeners on every node and taps on every pod would cost seconds:
    the observation covers what the simulation names (hops, endpoints, their nodes) and the source."""
    import dataclasses

    from netsim.trace.api import observation_scope
    from netsim.trace.view import PodKernelState

    v = S.view()
    far = PodKernelState("default/far", "10.244.2.7", "node-c", "netsim-t-pod-default-far", {"app": "far"})
    v = dataclasses.replace(v, pods=[*v.pods, far], node_ips={**v.node_ips, "node-c": "172.18.0.4"},
                            node_netns={**v.node_netns, "node-c": "netsim-t-node-c"})
    branches = simulate(v, S.CLIENT, S.WEB_SVC, 40000)
    candidates = [b.endpoint for b in branches if b.endpoint]
    scope = observation_scope(v, S.CLIENT, S.WEB_SVC, branches, candidates)
    assert {"netsim-t-pod-default-client", "netsim-t-pod-default-web-a", "netsim-t-pod-default-web-b",
            v.node_ns("node-a"), v.node_ns("node-b")} <= scope
    assert "netsim-t-node-c" not in scope and far.netns not in scope
    # a pod destination brings its node even when no branch reaches it
    scope = observation_scope(v, S.CLIENT, S.WEB_B, [], [])
    assert {"netsim-t-pod-default-web-b", v.node_ns("node-b"), v.node_ns("node-a")} <= scope
    assert v.pod_by_ip("10.244.2.7") == far and v.label_of(far.netns) == "pod default/far"
