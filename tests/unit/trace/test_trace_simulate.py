"""The simulator over a hand-built two-node view: forks per endpoint, VXLAN outer headers from neigh+FDB,
kube-proxy REJECT, NodePort masquerade, and NetworkPolicy drops named by the policy model."""

from __future__ import annotations

import pytest
import trace_synthetic as S

from netsim.trace import hops as H
from netsim.trace.simulate.reply import walk_reply
from netsim.trace.simulate.walk import simulate, strip_calico


def test_service_forks_into_one_branch_per_endpoint_with_probabilities():
    paths = simulate(S.view(), S.CLIENT, S.WEB_SVC, 40000)
    by_ep = {p.endpoint: p for p in paths}
    assert set(by_ep) == {"default/web-a", "default/web-b"}
    assert sum(p.probability for p in paths) == pytest.approx(1.0)
    assert by_ep["default/web-a"].probability == pytest.approx(0.5)
    assert all(p.verdict == H.VERDICT_DELIVERED for p in paths)
    lb = [h for h in by_ep["default/web-b"].hops if h.component == H.LB]
    assert lb and lb[0].translated == {"src": "10.244.0.2", "dst": "10.244.1.5:8080"}
    assert "default/web cluster IP" in lb[0].detail and lb[0].chain == "KUBE-SEP-B"


def test_remote_endpoint_is_encapsulated_with_outer_ips_vni_and_port():
    [remote] = [p for p in simulate(S.view(), S.CLIENT, S.WEB_SVC, 40000) if p.endpoint == "default/web-b"]
    assert remote.tunnel == {"src": "172.18.0.2", "dst": "172.18.0.3", "vni": 1, "port": 8472}
    actions = [(h.node, h.action) for h in remote.hops if h.direction == "request"]
    assert ("node-a", H.ENCAPSULATED) in actions and ("node-b", H.DECAPSULATED) in actions
    assert actions[-1] == ("pod default/web-b", H.DELIVERED)
    assert not remote.masquerade  # pod to pod keeps its source (flannel RETURNs pod->pod)


def test_local_endpoint_is_not_encapsulated():
    [local] = [p for p in simulate(S.view(), S.CLIENT, S.WEB_SVC, 40000) if p.endpoint == "default/web-a"]
    assert local.tunnel is None
    assert not any(h.action == H.ENCAPSULATED for h in local.hops)


def test_service_without_endpoints_is_rejected_by_kube_proxy_rule():
    [p] = simulate(S.view(), S.CLIENT, S.EMPTY_SVC, 40000)
    assert p.verdict == H.VERDICT_REJECTED
    assert p.reason == "default/empty has no endpoints"
    assert p.hops[-1].action == H.REJECTED and p.hops[-1].chain == "KUBE-SERVICES"


def test_external_host_to_nodeport_is_masqueraded():
    paths = simulate(S.view(), S.EXT, S.NODEPORT_A, 40000)
    assert {p.endpoint for p in paths} == {"default/web-a", "default/web-b"}
    assert all(p.masquerade for p in paths)
    [remote] = [p for p in paths if p.endpoint == "default/web-b"]
    snat = [h for h in remote.hops if h.component == H.NAT and h.action == H.TRANSLATED]
    assert snat[0].translated["src"] == "10.244.0.0"  # flannel.1's address, as MASQUERADE picks
    assert remote.hops[0].node == "host/ext" and remote.hops[1].node == "fabric"
    # the way back: web-b answers 10.244.0.0 (node-a's flannel.1), VXLAN to node-a, conntrack undoes the
    # masquerade there, and the fabric routes the answer to the external host
    assert all(p.returned for p in paths)
    walk = walk_reply(S.view(), S.EXT, "default/web-b", "10.244.1.5", "10.244.0.0", remote.snat)
    assert walk.returned and [h.node for h in walk.hops] == ["pod default/web-b", "node-b", "node-a", "node-a",
                                                             "host/ext"]
    assert walk.hops[1].action == H.ENCAPSULATED and "-> 203.0.113.10" in walk.hops[2].detail
    lost = walk_reply(S.view(), S.EXT, "default/web-b", "10.244.1.5", "10.244.0.0", [])
    assert not lost.returned and "node node-a (10.244.0.0), which did not send the request" in lost.reason


def test_direct_pod_to_pod_needs_no_nat():
    [p] = simulate(S.view(), S.CLIENT, S.WEB_B, 40000)
    assert p.verdict == H.VERDICT_DELIVERED and p.endpoint == "default/web-b"
    assert not any(h.component == H.LB for h in p.hops)


def test_calico_ingress_default_deny_names_the_isolating_policy():
    paths = simulate(S.view("calico", (S.DENY_WEB,)), S.CLIENT, S.WEB_SVC, 40000)
    assert {p.verdict for p in paths} == {H.VERDICT_DROPPED}
    for p in paths:
        assert p.policy == {"namespace": "default", "name": "web-deny", "rule": None, "direction": "ingress"}
        assert p.hops[-1].component == H.POLICY and p.hops[-1].chain.startswith("cali-tw-cali")


def test_flannel_does_not_enforce_policy():
    paths = simulate(S.view("flannel", (S.DENY_WEB,)), S.CLIENT, S.WEB_SVC, 40000)
    assert {p.verdict for p in paths} == {H.VERDICT_DELIVERED}


def test_strip_calico_keeps_kube_chains_only():
    text = strip_calico(S.rules("10.244.0.0/24"))
    assert "cali" not in text and "KUBE-SERVICES -d 10.96.0.30/32" in text


def test_masqueraded_nodeport_traffic_to_a_local_pod_is_still_policed():
    # filter FORWARD (calico's policy) runs before nat POSTROUTING (MASQUERADE): the local pod's ingress
    # policy judges the external source, and the drop comes before any SNAT (found against the kernel)
    paths = simulate(S.view("calico", (S.DENY_WEB,)), S.EXT, S.NODEPORT_A, 40000)
    assert {(p.endpoint, p.verdict) for p in paths} == {
        ("default/web-a", H.VERDICT_DROPPED),
        ("default/web-b", H.VERDICT_DROPPED),
    }
    [local] = [p for p in paths if p.endpoint == "default/web-a"]
    assert not local.masquerade and not any(
        h.component == H.NAT and h.action == H.TRANSLATED for h in local.hops
    )


def test_delivered_branches_carry_the_expected_answer_and_its_way_back():
    [remote] = [p for p in simulate(S.view(), S.CLIENT, S.WEB_SVC, 40000) if p.endpoint == "default/web-b"]
    assert remote.answered == "SYN-ACK"  # web-b declares 8080/TCP: the workload server answers
    back = [h for h in remote.hops if h.direction == "reply"]
    assert [(h.node, h.action) for h in back] == [
        ("pod default/web-b", H.REPLIED),
        ("node-b", H.ENCAPSULATED),
        ("node-a", H.DECAPSULATED),
        ("node-a", H.TRANSLATED),
        ("pod default/client", H.RECEIVED),
    ]
    assert back[1].tunnel == {"src": "172.18.0.3", "dst": "172.18.0.2", "vni": 1, "port": 8472}
    [p] = simulate(S.view(), S.CLIENT, S.WEB_B_OTHER_PORT, 40000)
    assert p.answered == "RST (nothing listens)"
    [p] = simulate(S.view(), S.CLIENT, S.EMPTY_SVC, 40000)
    assert p.answered == "ICMP port unreachable" and not any(h.direction == "reply" for h in p.hops)


EXT_8000 = S.TraceDestination("203.0.113.10", "ip", "203.0.113.10", 8000, "TCP")


def _nat_outgoing_view():
    """The synthetic view with felix's natOutgoing chain and pool ipsets on both nodes."""
    from cni_plugins import calico_nat

    v = S.view("calico")
    nat = calico_nat.render_nat(True, have_jump=False).splitlines()[1:-1]  # between *nat and COMMIT
    for nv in v.nodes.values():
        head, _, tail = nv.iptables.partition("COMMIT\n*filter")
        nv.iptables = head + "\n".join(nat) + "\nCOMMIT\n*filter" + tail
        nv.ipsets = {calico_nat.SET_ALL_POOLS: ["10.244.0.0/16"], calico_nat.SET_MASQ_POOLS: ["10.244.0.0/16"]}
    return v


def test_pod_to_external_host_without_masquerade_loses_the_answer_at_the_fabric():
    [p] = simulate(S.view("calico"), S.CLIENT, EXT_8000, 40000)
    assert p.verdict == H.VERDICT_DELIVERED and p.endpoint == "host/ext" and not p.masquerade
    assert p.returned is False
    last = p.hops[-1]
    assert last.direction == "reply" and last.node == "fabric" and last.action == H.DROPPED
    assert "the fabric has no route to 10.244.0.2" in last.detail


def test_pod_to_external_host_with_nat_outgoing_is_masqueraded_and_answered():
    [p] = simulate(_nat_outgoing_view(), S.CLIENT, EXT_8000, 40000)
    assert p.verdict == H.VERDICT_DELIVERED and p.masquerade and p.returned is True
    [snat] = [h for h in p.hops if h.component == H.NAT and h.direction == "request"]
    assert snat.node == "node-a" and snat.translated["src"] == "172.18.0.2" and snat.chain == "cali-nat-outgoing"
    back = [h for h in p.hops if h.direction == "reply"]
    assert [h.node for h in back] == ["host/ext", "fabric", "node-a", "pod default/client"]
    assert "conntrack undoes the masquerade: 172.18.0.2 -> 10.244.0.2" in back[2].detail
    assert back[-1].action == H.RECEIVED


def test_nat_outgoing_keeps_pod_to_pod_sources():
    paths = simulate(_nat_outgoing_view(), S.CLIENT, S.WEB_SVC, 40000)
    assert {p.endpoint for p in paths} == {"default/web-a", "default/web-b"}
    assert not any(p.masquerade for p in paths) and all(p.returned for p in paths)


def test_host_to_host_goes_through_the_fabric():
    other = S.TraceDestination("198.51.100.7", "ip", "198.51.100.7", 22, "TCP")
    v = S.view()
    v.hosts["far"], v.host_netns["far"] = "198.51.100.7", "netsim-t-host-far"
    [p] = simulate(v, S.EXT, other, 40000)
    assert p.verdict == H.VERDICT_DELIVERED and p.endpoint == "host/far" and p.returned is True


def test_past_the_walked_limit_a_nodes_branches_are_named_not_walked(monkeypatch):
    """A Service of more endpoints than MAX_WALKED_BRANCHES: the first are walked, the rest named with their
    probability (a trace through 10,000 endpoints walked each one for minutes); an observation that took an
    unwalked endpoint is no disagreement."""
    from netsim.trace.report.compare import disagreements
    from netsim.trace.simulate import walk
    monkeypatch.setattr(walk, "MAX_WALKED_BRANCHES", 1)
    unwalked: dict[str, float] = {}
    paths = simulate(S.view(), S.CLIENT, S.WEB_SVC, 40000, unwalked)
    assert [p.endpoint for p in paths] == ["default/web-a"] and paths[0].probability == pytest.approx(0.5)
    assert unwalked == {"10.244.1.5": pytest.approx(0.5)}
    assert any("1 more of the 2 branches" in n and "probability 0.5000" in n for n in paths[0].notes)
    observed = H.Path(verdict=H.VERDICT_DELIVERED, endpoint="default/web-b", endpoint_ip="10.244.1.5")
    assert disagreements(paths, observed, frozenset(unwalked)) == []
    assert disagreements(paths, observed)  # without the names it is a disagreement
