"""The interpreter walks rendered rules like kube-proxy's own test tracer, with real probabilities."""

from __future__ import annotations

import pytest

from netsim.proxy.interpret import Interpreter, Packet, aggregate, trace_packet, upstream_output
from netsim.proxy.render import render_full

from .scenarios import EXTERNAL_CLIENT, NODE, NODE_IP, POD_CLIENT, scenarios


def _interp(name: str, **kw) -> Interpreter:
    services, eps, cfg = scenarios()[name]
    return Interpreter(render_full(services, eps, NODE, cfg).payload, [NODE_IP], **kw)


def test_three_endpoints_each_one_third() -> None:
    outs = _interp("clusterip_3ep").trace(Packet(POD_CLIENT, "10.96.0.20", dport=80))
    agg = aggregate(outs)
    assert set(agg) == {"10.244.1.2:8080", "10.244.2.1:8080", "10.244.2.3:8080"}
    for p in agg.values():
        assert p == pytest.approx(1 / 3, abs=1e-9)
    assert not any(o.marked for o in outs)  # pod source: no masquerade
    o = outs[0]
    assert o.chains()[:4] == ["nat/PREROUTING", "nat/KUBE-SERVICES", "nat/KUBE-SVC-LOLE4ISW44XBNF3G", "nat/KUBE-SEP-PXJ2U7QYT2QW5545"]
    assert o.hooks == ("nat/PREROUTING", "filter/FORWARD", "nat/POSTROUTING")
    assert o.comment == "default/web" and o.rule and "DNAT --to-destination 10.244.1.2:8080" in o.rule


def test_ten_endpoints_each_one_tenth() -> None:
    agg = aggregate(_interp("clusterip_10ep").trace(Packet(POD_CLIENT, "10.96.0.20", dport=80)))
    assert len(agg) == 10
    assert all(p == pytest.approx(0.1, abs=1e-9) for p in agg.values())
    assert sum(agg.values()) == pytest.approx(1.0)


def test_node_source_to_cluster_ip_is_masqueraded() -> None:
    outs = _interp("clusterip_1ep").trace(Packet(NODE_IP, "10.96.0.20", dport=80, origin="local"))
    assert upstream_output(outs) == ("10.244.2.1:8080", True)
    assert outs[0].masquerade


def test_hairpin_is_masqueraded() -> None:
    outs = _interp("clusterip_1ep").trace(Packet("10.244.2.1", "10.96.0.20", dport=80))
    assert upstream_output(outs) == ("10.244.2.1:8080", True)


def test_external_nodeport_cluster_policy_is_masqueraded() -> None:
    outs = _interp("nodeport").trace(Packet(EXTERNAL_CLIENT, NODE_IP, dport=30080))
    assert set(aggregate(outs)) == {"10.244.1.1:8080", "10.244.2.1:8080"}
    assert all(o.marked for o in outs)
    # Forwarded to a pod: POSTROUTING really masquerades it.
    assert all(o.masquerade for o in outs)


def test_external_nodeport_local_policy_keeps_source_and_uses_local_endpoint() -> None:
    outs = _interp("etp_local_with_local").trace(Packet(EXTERNAL_CLIENT, NODE_IP, dport=30081))
    assert upstream_output(outs) == ("10.244.1.1:8080", False)
    assert "nat/KUBE-SVL-XJJF7THR6JE4YGOO" in outs[0].chains()
    # A pod on the node is short-circuited to all endpoints, without masquerade.
    pod = _interp("etp_local_with_local").trace(Packet(POD_CLIENT, NODE_IP, dport=30081))
    assert set(aggregate(pod)) == {"10.244.1.1:8080", "10.244.2.1:8080"}
    assert not any(o.marked for o in pod)


def test_etp_local_without_local_endpoints_drops_external_traffic() -> None:
    interp = _interp("etp_local_without_local")
    for dst, port in ((NODE_IP, 30081), ("203.0.113.200", 80)):
        outs = interp.trace(Packet(EXTERNAL_CLIENT, dst, dport=port))
        assert [o.summary() for o in outs] == ["DROP"]
        assert outs[0].comment == "default/lb-local has no local endpoints"
    # The node itself still reaches the remote endpoint (LOCAL short-circuit, masqueraded).
    outs = interp.trace(Packet(NODE_IP, NODE_IP, dport=30081, origin="local"))
    assert upstream_output(outs) == ("10.244.2.1:8080", True)


def test_health_check_node_port_accepted() -> None:
    outs = _interp("etp_local_without_local").trace(Packet(EXTERNAL_CLIENT, NODE_IP, dport=32000))
    assert [o.summary() for o in outs] == ["ACCEPT"]


def test_no_endpoints_rejects_with_comment() -> None:
    interp = _interp("no_endpoints")
    for pkt in (Packet(POD_CLIENT, "10.96.0.29", dport=80), Packet(EXTERNAL_CLIENT, NODE_IP, dport=30083),
                Packet(EXTERNAL_CLIENT, "192.0.2.12", dport=80), Packet(POD_CLIENT, "203.0.113.203", dport=80)):
        outs = interp.trace(pkt)
        assert [o.summary() for o in outs] == ["REJECT"], pkt
        assert outs[0].comment == "default/empty has no endpoints"


def test_internal_traffic_policy_local() -> None:
    interp = _interp("itp_local")
    assert upstream_output(interp.trace(Packet(POD_CLIENT, "10.96.0.24", dport=80))) == ("10.244.1.1:8080", False)
    outs = interp.trace(Packet(POD_CLIENT, "10.96.0.25", dport=80))
    assert [o.summary() for o in outs] == ["DROP"]
    assert outs[0].comment == "default/itp-no has no local endpoints"


def test_load_balancer_source_ranges() -> None:
    interp = _interp("lb_source_ranges")
    allowed = interp.trace(Packet("198.51.100.7", "203.0.113.201", dport=80))
    assert upstream_output(allowed) == ("10.244.2.1:8080", True)
    blocked = interp.trace(Packet("198.51.100.200", "203.0.113.202", dport=80))
    assert [o.summary() for o in blocked] == ["DROP"]
    assert "traffic not accepted by KUBE-FW-" in (blocked[0].comment or "")
    # NodePorts bypass loadBalancerSourceRanges.
    assert upstream_output(interp.trace(Packet("198.51.100.200", NODE_IP, dport=30082))) == ("10.244.2.1:8080", True)
    # The range contains the node IP, so the LB IP as source is allowed too.
    assert upstream_output(interp.trace(Packet("203.0.113.201", "203.0.113.201", dport=80)))[0] == "10.244.2.1:8080"


def test_external_ips() -> None:
    outs = _interp("external_ips").trace(Packet(EXTERNAL_CLIENT, "192.0.2.11", dport=80))
    assert set(aggregate(outs)) == {"10.244.1.1:8080", "10.244.2.1:8080"} and all(o.marked for o in outs)


def test_session_affinity_only_sticks_when_the_source_is_remembered() -> None:
    services, eps, cfg = scenarios()["session_affinity"]
    payload = render_full(services, eps, NODE, cfg).payload
    fresh = trace_packet(payload, Packet(POD_CLIENT, "10.96.0.28", dport=80), [NODE_IP])
    assert len(aggregate(fresh)) == 2
    sep = next(x.split()[1] for x in payload.splitlines() if x.startswith("-A KUBE-SEP-") and "10.244.2.1:8080" in x)
    sticky = trace_packet(payload, Packet(POD_CLIENT, "10.96.0.28", dport=80), [NODE_IP],
                          recent={sep: [POD_CLIENT]})
    assert aggregate(sticky) == {"10.244.2.1:8080": pytest.approx(1.0)}


def test_protocols_are_matched() -> None:
    interp = _interp("udp_sctp")
    udp = interp.trace(Packet(POD_CLIENT, "10.96.0.10", protocol="UDP", dport=53))
    assert set(aggregate(udp)) == {"10.244.1.5:53", "10.244.2.5:53"}
    assert "udp" in udp[0].rule
    sctp = interp.trace(Packet(POD_CLIENT, "10.96.0.31", protocol="SCTP", dport=3868))
    assert upstream_output(sctp) == ("10.244.2.1:3868", False)
    assert upstream_output(interp.trace(Packet(POD_CLIENT, "10.96.0.31", protocol="TCP", dport=3868))) == ("", False)


def test_no_match_passes_untouched() -> None:
    outs = _interp("clusterip_1ep").trace(Packet(POD_CLIENT, "10.244.2.9", dport=80))
    assert len(outs) == 1 and outs[0].summary() == "" and outs[0].verdict == "accept" and outs[0].dnat is None


def test_localhost_nodeport_is_masqueraded() -> None:
    outs = _interp("nodeport").trace(Packet("127.0.0.1", "127.0.0.1", dport=30080, origin="local"))
    assert {o.summary() for o in outs} == {"10.244.1.1:8080", "10.244.2.1:8080"}
    assert all(o.marked for o in outs)


def test_unknown_matches_are_assumed_and_noted() -> None:
    text = ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m set --match-set blocked src -j DROP\nCOMMIT\n")
    outs = trace_packet(text, Packet("10.0.0.1", "10.0.0.2", dport=80), [])
    assert [o.summary() for o in outs] == ["DROP"]
    assert any("--match-set" in n for n in outs[0].notes)


def test_chain_policy_drop_applies() -> None:
    text = "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n"
    assert [o.verdict for o in trace_packet(text, Packet("10.0.0.1", "10.0.0.2", dport=80), [])] == ["drop"]


def test_match_set_uses_the_given_ipsets_and_assumes_unknown_sets() -> None:
    rules = ("*nat\n:POSTROUTING ACCEPT [0:0]\n"
             "-A POSTROUTING -m set --match-set masq src -m set ! --match-set all dst -j MASQUERADE\n"
             "COMMIT\n")
    sets = {"masq": ["10.244.0.0/16"], "all": ["10.244.0.0/16", "192.168.7.7"]}
    interp = Interpreter(rules, [NODE_IP], ipsets=sets)
    assert interp.trace(Packet("10.244.1.2", "203.0.113.10"))[0].masquerade
    assert not interp.trace(Packet("10.244.1.2", "192.168.7.7"))[0].masquerade  # hash:ip member
    assert not interp.trace(Packet("172.18.0.9", "203.0.113.10"))[0].masquerade
    [assumed] = Interpreter(rules, [NODE_IP]).trace(Packet("172.18.0.9", "203.0.113.10"))
    assert assumed.masquerade and any("--match-set masq src" in n for n in assumed.notes)


def test_ten_thousand_endpoints_each_one_ten_thousandth() -> None:
    """One statistic rule per endpoint in the Service's chain: the walk must not recurse per rule (at
    10,000 it passed Python's recursion limit in `netsim trace` through such a Service)."""
    from netsim.proxy.model import Endpoint

    from .scenarios import CONFIG, svc
    sp = svc("big", "10.96.0.30")
    eps = [Endpoint(f"10.245.{i // 250}.{i % 250 + 1}", 8080, "node-2") for i in range(10_000)]
    outs = Interpreter(render_full([sp], {sp.key: eps}, NODE, CONFIG).payload, [NODE_IP]).trace(
        Packet(POD_CLIENT, "10.96.0.30", dport=80))
    agg = aggregate(outs)
    assert len(agg) == 10_000 and sum(agg.values()) == pytest.approx(1.0)
    assert all(p == pytest.approx(1e-4, rel=1e-6) for p in agg.values())
    assert any(c.startswith("nat/KUBE-SEP-") for c in outs[0].chains())
