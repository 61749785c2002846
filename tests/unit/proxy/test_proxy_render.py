"""Renderer behaviour: upstream conformance, endpoint selection, jump rules, partial syncs, counts."""

from __future__ import annotations

import pytest

from netsim.proxy.iptables_text import Ruleset
from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort
from netsim.proxy.render import (
    categorize_endpoints,
    dedupe_endpoints,
    render,
    render_full,
    render_jump_rules,
    render_partial,
)

from .scenarios import CONFIG, NODE, local_ep, remote_ep, scenarios, svc

# The services and endpoints of upstream TestOverallIPTablesRules (proxier_test.go), and the rule lines
# its expected output contains (upstream sorts them; the fake proxier uses mark 0x4000, nfacct counters
# present, no --random-fully). Kept to prove the renderer writes exactly kube-proxy's rules.
UPSTREAM_NODE = NodeInfo("test-node", ("192.168.0.2",))
UPSTREAM_CFG = ProxyConfig(cluster_cidr="10.0.0.0/8", nfacct=True, random_fully=False)
UPSTREAM_SERVICES = [
    ServicePort("ns1", "svc1", "p80", "TCP", "172.30.0.41", 80),
    ServicePort("ns2", "svc2", "p80", "TCP", "172.30.0.42", 80, node_port=3001, external_ips=["192.168.99.22"],
                load_balancer_ips=["1.2.3.4"], external_traffic_policy="Local", health_check_node_port=30000),
    ServicePort("ns3", "svc3", "p80", "TCP", "172.30.0.43", 80, node_port=3003),
    ServicePort("ns4", "svc4", "p80", "TCP", "172.30.0.44", 80, external_ips=["192.168.99.33"]),
    ServicePort("ns5", "svc5", "p80", "TCP", "172.30.0.45", 80, node_port=3002, load_balancer_ips=["5.6.7.8"],
                health_check_node_port=30000, load_balancer_source_ranges=[" 203.0.113.0/25"],
                session_affinity_timeout=10800),
    ServicePort("ns6", "svc6", "p80", "TCP", "172.30.0.46", 80),
]
UPSTREAM_EPS = {
    ("ns1/svc1:p80", "TCP"): [Endpoint("10.180.0.1", 80)],
    ("ns2/svc2:p80", "TCP"): [Endpoint("10.180.0.2", 80)],
    ("ns3/svc3:p80", "TCP"): [Endpoint("10.180.0.3", 80)],
    ("ns4/svc4:p80", "TCP"): [Endpoint("10.180.0.4", 80), Endpoint("10.180.0.5", 80, "test-node")],
    ("ns5/svc5:p80", "TCP"): [Endpoint("10.180.0.3", 80)],
}
UPSTREAM_EXPECTED = r"""
*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
:KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
:KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
:KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
:KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3002 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
COMMIT
"""


def _by_table(text: str) -> dict[str, set[str]]:
    """Lines per table (chain declarations and -A rules), ignoring order and jump rules."""
    out: dict[str, set[str]] = {}
    table = ""
    for line in text.strip().splitlines():
        if line.startswith("*"):
            table = line[1:]
            out[table] = set()
        elif line.startswith((":", "-A ")):
            out[table].add(line)
    return out


def test_matches_upstream_overall_rules() -> None:
    payload = render_full(UPSTREAM_SERVICES, UPSTREAM_EPS, UPSTREAM_NODE, UPSTREAM_CFG).payload
    payload = payload.replace("0x00004000", "0x4000")
    assert _by_table(payload) == _by_table(UPSTREAM_EXPECTED)


def test_payload_order_is_kube_proxys_write_order() -> None:
    payload = render_full(UPSTREAM_SERVICES, UPSTREAM_EPS, UPSTREAM_NODE, UPSTREAM_CFG).payload
    lines = payload.splitlines()
    nat = lines[lines.index("*nat"):]
    assert nat[1:5] == [":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]", ":KUBE-POSTROUTING - [0:0]",
                        ":KUBE-MARK-MASQ - [0:0]"]
    rules = [x for x in nat if x.startswith("-A ")]
    assert rules[0].startswith("-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN")
    assert rules[-1].startswith('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports;')
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"


def test_mark_follows_masquerade_bit() -> None:
    cfg = ProxyConfig(cluster_cidr="10.244.0.0/16", masquerade_bit=5)
    assert cfg.masquerade_mark == "0x00000020"
    payload = render_full([], {}, NODE, cfg).payload
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x00000020" in payload
    assert "-j MASQUERADE --random-fully" in payload


# --- endpoint selection ---------------------------------------------------------------------------


def test_endpoints_sorted_by_string_and_deduplicated() -> None:
    eps = [Endpoint("10.0.1.2", 80), Endpoint("10.0.1.10", 80, terminating=True, ready=False),
           Endpoint("10.0.1.10", 80)]
    out = dedupe_endpoints(eps)
    assert [str(e) for e in out] == ["10.0.1.10:80", "10.0.1.2:80"]
    assert not out[0].terminating


def test_terminating_fallback_is_independent_for_cluster_and_local() -> None:
    sp = svc("x", "10.96.0.50", node_port=30050, external_traffic_policy="Local")
    eps = dedupe_endpoints([remote_ep(1), local_ep(1, ready=False, serving=True, terminating=True)])
    cat = categorize_endpoints(eps, sp, "node-1")
    assert [e.ip for e in cat.cluster] == ["10.244.2.1"]
    assert [e.ip for e in cat.local] == ["10.244.1.1"]
    assert [e.ip for e in cat.reachable] == ["10.244.1.1", "10.244.2.1"]
    assert cat.has_any


def test_not_serving_endpoints_are_never_used() -> None:
    sp = svc("x", "10.96.0.50")
    cat = categorize_endpoints([remote_ep(1, ready=False, serving=False, terminating=True)], sp, "node-1")
    assert cat.cluster == [] and not cat.has_any


# --- REJECT / DROP --------------------------------------------------------------------------------


def test_no_endpoints_rejects_everywhere_and_writes_no_nat_chains() -> None:
    services, eps, cfg = scenarios()["no_endpoints"]
    payload = render_full(services, eps, NODE, cfg).payload
    assert ('-A KUBE-SERVICES -m comment --comment "default/empty has no endpoints" -m tcp -p tcp '
            "-d 10.96.0.29 --dport 80 -j REJECT") in payload
    ext = [x for x in payload.splitlines() if x.startswith("-A KUBE-EXTERNAL-SERVICES")]
    assert len(ext) == 3 and all(x.endswith("-j REJECT") for x in ext)
    assert "KUBE-SVC-" not in payload and "KUBE-EXT-" not in payload


def test_itp_local_without_local_endpoints_drops_cluster_ip() -> None:
    services, eps, cfg = scenarios()["itp_local"]
    res = render_full(services, eps, NODE, cfg)
    assert ('-A KUBE-SERVICES -m comment --comment "default/itp-no has no local endpoints" -m tcp -p tcp '
            "-d 10.96.0.25 --dport 80 -j DROP") in res.payload
    assert res.counts.no_local_endpoints_internal == 1


def test_health_check_node_port_accepted_even_without_endpoints() -> None:
    sp = svc("lb", "10.96.0.60", node_port=30060, load_balancer_ips=["203.0.113.210"],
             external_traffic_policy="Local", health_check_node_port=32100)
    payload = render_full([sp], {}, NODE, CONFIG).payload
    assert ('-A KUBE-NODEPORTS -m comment --comment "default/lb health check node port" -m tcp -p tcp '
            "--dport 32100 -j ACCEPT") in payload


def test_nfacct_matches_are_optional() -> None:
    services, eps, _ = scenarios()["nodeport"]
    off = render_full(services, eps, NODE, CONFIG).payload
    on = render_full(services, eps, NODE, ProxyConfig(cluster_cidr="10.244.0.0/16", nfacct=True)).payload
    assert "nfacct" not in off
    assert "-d 127.0.0.0/8 --dport 30080 -m nfacct --nfacct-name localhost_nps_accepted_pkts" in on
    assert "--ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP" in on


def test_localhost_nodeports_disabled() -> None:
    cfg = ProxyConfig(cluster_cidr="10.244.0.0/16", localhost_nodeports=False)
    payload = render_full([], {}, NODE, cfg).payload
    assert "-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS" in payload
    assert "KUBE-FIREWALL" not in payload


def test_large_cluster_mode_drops_endpoint_comments() -> None:
    sp = svc("big", "10.96.0.70")
    eps = {sp.key: [Endpoint(f"10.244.{i // 250}.{i % 250 + 1}", 80) for i in range(3)]}
    res = render_full([sp], eps, NODE, ProxyConfig(cluster_cidr="10.244.0.0/16", large_cluster_threshold=2))
    assert res.counts.large_cluster_mode
    sep_lines = [x for x in res.payload.splitlines() if x.startswith("-A KUBE-SEP-")]
    assert sep_lines and all("--comment" not in x for x in sep_lines)
    assert "-m comment --comment \"default/big cluster IP\"" in res.payload  # other comments stay


# --- jump rules -----------------------------------------------------------------------------------


def test_jump_rules_match_kube_proxys_prepend_order() -> None:
    state = Ruleset.from_text(render_full([], {}, NODE, CONFIG).payload)
    fwd = [" ".join(r) for r in state.chain("filter", "FORWARD").rules]
    # Later iptablesJumpChains entries are prepended above earlier ones.
    assert [x.split("-j ")[-1] for x in fwd] == ["KUBE-PROXY-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES",
                                                 "KUBE-EXTERNAL-SERVICES"]
    inp = [r[-1] for r in state.chain("filter", "INPUT").rules]
    assert inp == ["KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES"]
    assert [r[-1] for r in state.chain("nat", "PREROUTING").rules] == ["KUBE-SERVICES"]


def test_second_full_sync_does_not_duplicate_jumps() -> None:
    services, eps, cfg = scenarios()["nodeport"]
    # Someone else (flannel) already hooks POSTROUTING; its rule must survive untouched.
    other = "*nat\n:FLANNEL-POSTRTG - [0:0]\n-A POSTROUTING -j FLANNEL-POSTRTG\nCOMMIT\n"
    kernel = Ruleset.from_text(other)
    first = render_full(services, eps, NODE, cfg, existing_save=kernel.to_save())
    kernel.apply(first.payload)
    second = render_full(services, eps, NODE, cfg, existing_save=kernel.to_save(), prev=first.state)
    assert second.counts.jump_rules_added == 0
    assert "-I " not in second.payload and "-D " not in second.payload
    kernel.apply(second.payload)
    post = [r[-1] for r in kernel.chain("nat", "POSTROUTING").rules]
    assert post == ["KUBE-POSTROUTING", "FLANNEL-POSTRTG"]
    assert sum(1 for r in kernel.chain("filter", "FORWARD").rules if r[-1] == "KUBE-FORWARD") == 1


def test_missing_jump_is_restored_and_duplicate_removed() -> None:
    kernel = Ruleset.from_text(render_full([], {}, NODE, CONFIG).payload)
    kernel.apply('*nat\n-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'
                 '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\nCOMMIT\n')
    lines = render_jump_rules(kernel.to_save(), CONFIG)["nat"]
    assert lines == ['-D OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
                     '-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
    kernel.apply("*nat\n" + "\n".join(lines) + "\nCOMMIT\n")
    assert len(kernel.chain("nat", "OUTPUT").rules) == 1 and len(kernel.chain("nat", "PREROUTING").rules) == 1


# --- partial syncs --------------------------------------------------------------------------------


def _world():
    a = svc("a", "10.96.1.1")
    b = svc("b", "10.96.1.2", node_port=30100)
    c = svc("c", "10.96.1.3")
    eps = {a.key: [remote_ep(1)], b.key: [remote_ep(2), local_ep(2)], c.key: [remote_ep(3)]}
    return [a, b, c], eps


def test_partial_sync_rewrites_only_changed_services() -> None:
    services, eps = _world()
    full = render_full(services, eps, NODE, CONFIG)
    eps2 = dict(eps)
    eps2[services[1].key] = [remote_ep(2)]  # b loses its local endpoint
    part = render_partial(full.state, services, eps2, NODE, CONFIG)
    assert not part.counts.full
    assert part.counts.services_rewritten == ("default/b",)
    decl = [x for x in part.payload.splitlines() if x.startswith(":KUBE-S") and "-SERVICES" not in x]
    assert all("KUBE-SEP" in x or "KUBE-SVC" in x for x in decl)
    assert "default/a -> " not in part.payload and "default/c -> " not in part.payload
    assert "default/b -> 10.244.2.2:8080" in part.payload
    # a's and c's ClusterIP rules are still in the rewritten KUBE-SERVICES chain.
    assert '"default/a cluster IP" -m tcp -p tcp -d 10.96.1.1' in part.payload
    # The local endpoint's SEP chain is gone: flushed and deleted.
    stale = part.counts.chains_deleted
    assert len(stale) == 1 and stale[0].startswith("KUBE-SEP-")
    assert f":{stale[0]} - [0:0]" in part.payload and f"-X {stale[0]}" in part.payload
    assert "-I " not in part.payload  # no jump rules on partial syncs
    assert part.counts.nat_rules < part.counts.nat_rules_total


def test_partial_sync_replay_equals_full_sync() -> None:
    services, eps = _world()
    full = render_full(services, eps, NODE, CONFIG)
    services2 = [services[0], services[1]]  # c deleted
    eps2 = {k: v for k, v in eps.items() if k != services[2].key}
    eps2[services[0].key] = [remote_ep(1), remote_ep(9)]
    part = render_partial(full.state, services2, eps2, NODE, CONFIG)
    assert part.counts.services_rewritten == ("default/a",)
    replayed = Ruleset.from_text(full.payload, part.payload)
    fresh = Ruleset.from_text(render_full(services2, eps2, NODE, CONFIG).payload)
    for table in ("filter", "nat"):
        got = {n: [tuple(r) for r in c.rules] for n, c in replayed.tables[table].chains.items()}
        want = {n: [tuple(r) for r in c.rules] for n, c in fresh.tables[table].chains.items()}
        assert got == want
    from netsim.proxy.chains import ServiceChains
    assert ServiceChains(services[2]).svc not in replayed.chain_names("nat")


def test_unchanged_partial_sync_writes_no_service_chains() -> None:
    services, eps = _world()
    full = render_full(services, eps, NODE, CONFIG)
    part = render_partial(full.state, services, eps, NODE, CONFIG)
    assert part.counts.services_rewritten == () and part.counts.chains_deleted == ()
    assert "KUBE-SEP-" not in part.payload
    assert part.state == full.state


def test_config_change_forces_full_sync() -> None:
    services, eps = _world()
    full = render_full(services, eps, NODE, CONFIG)
    res = render_partial(full.state, services, eps, NODE, ProxyConfig(cluster_cidr="10.0.0.0/8"))
    assert res.counts.full and res.counts.services_rewritten == ("default/a", "default/b", "default/c")
    assert "! -s 10.0.0.0/8 -j KUBE-MARK-MASQ" in res.payload


def test_full_sync_deletes_leftover_chains_found_in_the_kernel() -> None:
    leftover = "*nat\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]\nCOMMIT\n"
    res = render(*_world(), NODE, CONFIG, full=True, existing_save=leftover)
    assert res.counts.chains_deleted == ("KUBE-SEP-BBBBBBBBBBBBBBBB", "KUBE-SVC-AAAAAAAAAAAAAAAA")
    Ruleset.from_text(leftover, res.payload)  # and the payload applies cleanly on top


def test_counts() -> None:
    services, eps = _world()
    res = render_full(services, eps, NODE, CONFIG)
    c = res.counts
    assert (c.service_ports, c.endpoints) == (3, 4)
    assert c.nat_rules == sum(1 for x in res.payload.split("*nat")[1].splitlines() if x.startswith("-A "))
    assert c.filter_chains == 6 and c.jump_rules_added == 14


@pytest.mark.parametrize("name", sorted(scenarios()))
def test_every_scenario_payload_applies(name: str) -> None:
    services, eps, cfg = scenarios()[name]
    Ruleset.from_text(render_full(services, eps, NODE, cfg).payload)


def test_full_sync_without_save_trusts_the_previous_state_for_jumps() -> None:
    services, eps = _world()
    kernel = Ruleset()
    first = render_full(services, eps, NODE, CONFIG)
    kernel.apply(first.payload)
    # A config change turns the next partial sync into a full one, with no iptables-save at hand.
    cfg2 = ProxyConfig(cluster_cidr="10.0.0.0/8", localhost_nodeports=False)
    second = render_partial(first.state, services, eps, NODE, cfg2)
    assert second.counts.full and second.counts.jump_rules_added == 0
    kernel.apply(second.payload)
    assert len(kernel.chain("nat", "PREROUTING").rules) == 1
    assert len(kernel.chain("filter", "INPUT").rules) == 4  # KUBE-FIREWALL jump left in place, like upstream
