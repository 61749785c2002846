"""kube-proxy's flags as packet flows through the rendered rules, mirroring upstream's unit tests for them
(kubernetes pkg/proxy/iptables/proxier_test.go: TestNodePorts for --nodeport-addresses and
--iptables-localhost-nodeports, TestExternalTrafficPolicyLocal / the masquerade cases for the local-traffic
detector and --masquerade-all). The node here has two addresses: 172.18.0.2 (primary) and 192.168.1.2
(upstream's testNodeIPAlt); the golden files golden/flag_*.txt pin the whole payload of each setting."""

from __future__ import annotations

import pytest

from netsim.proxy.interpret import Packet, trace_packet, upstream_output
from netsim.proxy.model import NodeInfo, ProxyConfig
from netsim.proxy.render import render_full

from .scenarios import ALT_NODE_IP, EXTERNAL_CLIENT, NODE_2IPS, NODE_IP, local_ep, remote_ep, svc

NP = svc("np", "10.96.0.41", node_port=3001)
NP_EPS = {NP.key: [remote_ep(1, port=80), local_ep(1, port=80)]}
BOTH = "10.244.1.1:80, 10.244.2.1:80"


def _flow(cfg: ProxyConfig, pkt: Packet, node: NodeInfo = NODE_2IPS) -> tuple[str, bool]:
    payload = render_full([NP], NP_EPS, node, cfg).payload
    return upstream_output(trace_packet(payload, pkt, list(node.ips)))


def _cfg(**kw) -> ProxyConfig:
    return ProxyConfig(**{"cluster_cidr": "10.244.0.0/16", **kw})


# name, localhostNodePorts, nodePortAddresses, NodePort on the alternate IP, localhost NodePort, KUBE-FIREWALL
NODEPORT_CASES = [
    ("localhost-nodeports enabled", True, (), True, True, True),
    ("localhost-nodeports disabled", False, (), True, False, False),
    ("localhost-nodeports disabled, localhost in nodeport-addresses", False, ("172.18.0.0/16", "127.0.0.1/32"),
     False, False, False),
    ("multiple nodeport-addresses, one of the other family", False,
     ("172.18.0.0/24", "192.168.1.0/24", "2001:db8::/64"), True, False, False),
    ("localhost-nodeports enabled, loopback in nodeport-addresses", True, ("172.18.0.0/16", "127.0.0.0/8"),
     False, True, True),
    ("localhost-nodeports enabled, no loopback in nodeport-addresses (disabled automatically)", True,
     ("172.18.0.0/16",), False, False, False),
    ("primary", True, ("primary",), False, False, False),
    ("zero CIDR matches all", True, ("172.18.0.0/16", "0.0.0.0/0"), True, True, True),
    ("only IPv6 CIDRs: all IPv4 addresses", True, ("2001:db8::/64",), True, True, True),
]


@pytest.mark.parametrize("name, localhost, npa, alt_ok, localhost_ok, firewall", NODEPORT_CASES,
                         ids=[c[0] for c in NODEPORT_CASES])
def test_nodeports(name: str, localhost: bool, npa: tuple[str, ...], alt_ok: bool, localhost_ok: bool,
                   firewall: bool) -> None:
    cfg = _cfg(localhost_nodeports=localhost, nodeport_addresses=npa)
    # Basic flows, the same in every case.
    assert _flow(cfg, Packet("10.244.1.50", "10.96.0.41", dport=80)) == (BOTH, False)
    assert _flow(cfg, Packet(EXTERNAL_CLIENT, NODE_IP, dport=3001)) == (BOTH, True)
    assert _flow(cfg, Packet(NODE_IP, NODE_IP, dport=3001, origin="local")) == (BOTH, True)
    alt = _flow(cfg, Packet(EXTERNAL_CLIENT, ALT_NODE_IP, dport=3001))
    assert alt == ((BOTH, True) if alt_ok else ("", False))
    lo = _flow(cfg, Packet("127.0.0.1", "127.0.0.1", dport=3001, origin="local"))
    assert lo == ((BOTH, True) if localhost_ok else ("", False))
    payload = render_full([NP], NP_EPS, NODE_2IPS, cfg).payload
    rule = ('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
            "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
    assert (rule in payload) == firewall
    assert cfg.effective_localhost_nodeports() == firewall


def test_primary_follows_each_nodes_own_ip() -> None:
    cfg = _cfg(nodeport_addresses=("primary",))
    other = NodeInfo("node-2", ("172.18.0.3", "192.168.1.3"), "10.244.2.0/24")
    assert [str(n) for n in cfg.nodeport_cidrs(NODE_2IPS)] == ["172.18.0.2/32"]
    assert cfg.nodeport_ips(other) == ["172.18.0.3"]
    assert _flow(cfg, Packet(EXTERNAL_CLIENT, "172.18.0.3", dport=3001), other) == (BOTH, True)
    assert _flow(cfg, Packet(EXTERNAL_CLIENT, "192.168.1.3", dport=3001), other) == ("", False)


def test_masquerade_all_masquerades_pod_traffic_to_cluster_ips() -> None:
    pod = Packet("10.244.1.50", "10.96.0.41", dport=80)
    assert _flow(_cfg(), pod) == (BOTH, False)
    assert _flow(_cfg(masquerade_all=True), pod) == (BOTH, True)
    # Without a detector only masqueradeAll masquerades; off-cluster sources are then left alone.
    assert _flow(_cfg(cluster_cidr=None), Packet(NODE_IP, "10.96.0.41", dport=80, origin="local")) == (BOTH, False)


@pytest.mark.parametrize("cfg, local_pkt, remote_pkt", [
    (_cfg(), Packet("10.244.2.50", "10.96.0.41", dport=80), Packet("172.18.0.9", "10.96.0.41", dport=80)),
    (_cfg(detect_local_mode="NodeCIDR"), Packet("10.244.1.50", "10.96.0.41", dport=80),
     Packet("10.244.2.50", "10.96.0.41", dport=80)),
    (_cfg(detect_local_mode="BridgeInterface", bridge_interface="cni0"),
     Packet("10.244.2.50", "10.96.0.41", dport=80, in_iface="cni0"),
     Packet("10.244.2.50", "10.96.0.41", dport=80, in_iface="flannel.1")),
    (_cfg(detect_local_mode="InterfaceNamePrefix", interface_name_prefix="cali"),
     Packet("10.244.2.50", "10.96.0.41", dport=80, in_iface="cali12345"),
     Packet("10.244.2.50", "10.96.0.41", dport=80, in_iface="eth0")),
], ids=["ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"])
def test_local_traffic_detector(cfg: ProxyConfig, local_pkt: Packet, remote_pkt: Packet) -> None:
    """Traffic the detector calls local reaches a ClusterIP unmasqueraded; other traffic is masqueraded."""
    assert _flow(cfg, local_pkt) == (BOTH, False)
    assert _flow(cfg, remote_pkt) == (BOTH, True)


def test_detector_rule_arguments_match_localdetector_go() -> None:
    node = NODE_2IPS
    assert _cfg().local_detector(node).if_not_local == "! -s 10.244.0.0/16"  # type: ignore[union-attr]
    assert _cfg(detect_local_mode="NodeCIDR").local_detector(node).if_local == "-s 10.244.1.0/24"  # type: ignore[union-attr]
    d = _cfg(detect_local_mode="InterfaceNamePrefix", interface_name_prefix="veth").local_detector(node)
    assert d is not None and (d.if_local, d.if_not_local) == ("-i veth+", "! -i veth+")
    assert _cfg(cluster_cidr=None).local_detector(node) is None
    assert _cfg(detect_local_mode="NodeCIDR").local_detector(NodeInfo("n", ("172.18.0.5",))) is None
