"""Emulated hosts on the fake kernel: a namespace per host on the segment, nodes on their own host's
underlay bridge, one flood entry per other host, the cluster fabric trunked to the first host, the
underlay MTU 50 below the hosts' network; without spec.hosts nothing of it is made."""

from __future__ import annotations

from netsim import fabric, hostnet, naming
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source

HOSTS = [{"name": "ha", "address": "192.168.9.1"}, {"name": "hb", "address": "192.168.9.2"},
         {"name": "hc", "address": "192.168.9.3"}]


def cluster(**spec):
    return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "hn"},
                          "spec": spec}, Source("t"))


def build(spec):
    k = FakeKernel()
    fabric.build_fabric(k, spec)
    if spec.hosts:
        hostnet.build_lan(k, spec)
        for i in range(len(spec.hosts)):
            hostnet.add_machine(k, spec, i)
        hostnet.join_underlay(k, spec)
    nodes = [fabric.add_node(k, spec, i, n) for i, n in enumerate(spec.nodes)]
    return k, nodes


def test_three_hosts_one_l2_underlay():
    spec = cluster(nodes=6, hosts=HOSTS)
    k, nodes = build(spec)
    for i, h in enumerate(spec.hosts):
        ns = naming.machine_ns("hn", h.name)
        assert naming.parse(ns).role == naming.MACHINE and naming.owned_by("hn", ns)
        peers = sorted(f.dst for f in k.fdbs(ns, hostnet.UNDERLAY_VXLAN) if f.mac == hostnet.FLOOD_MAC)
        assert peers == sorted(o.address for o in spec.hosts if o is not h)
        vx = k.link_get(ns, hostnet.UNDERLAY_VXLAN)
        assert vx.master == naming.UNDERLAY_BRIDGE and vx.mtu == 1450
        assert k.link_get(naming.lan_ns("hn"), naming.lan_port_for_machine(i)).master == hostnet.LAN_BRIDGE
    # node i hangs on its own host's bridge: node-1/4 on ha, node-2/5 on hb, ...
    for i, rec in enumerate(nodes):
        host = spec.hosts[i % 3].name
        assert rec["host"] == host
        assert fabric.node_port(spec, i) == (naming.machine_ns("hn", host), naming.fabric_port_for_node(i))
        assert k.link_get(naming.machine_ns("hn", host), naming.fabric_port_for_node(i)).master == "underlay"
        assert k.link_get(rec["netns"], naming.UPLINK).mtu == 1450
    # the cluster's fabric (gateway, external hosts) is trunked into the first host's underlay
    assert k.link_get(naming.fabric_ns("hn"), hostnet.TRUNK_FABRIC).master == naming.UNDERLAY_BRIDGE
    assert k.link_get(naming.machine_ns("hn", "ha"), hostnet.TRUNK_MACHINE).master == naming.UNDERLAY_BRIDGE
    assert k.link_get(naming.fabric_ns("hn"), naming.UNDERLAY_BRIDGE).mtu == 1450
    assert hostnet.join_underlay(k, spec) == 6  # idempotent: appending again adds nothing
    assert len([f for f in k.fdbs(naming.machine_ns("hn", "ha"), hostnet.UNDERLAY_VXLAN)]) == 2


def test_one_host_needs_no_vxlan_and_no_hosts_change_nothing():
    one = cluster(nodes=2, hosts=HOSTS[:1])
    k, nodes = build(one)
    assert k.link_get(naming.machine_ns("hn", "ha"), hostnet.UNDERLAY_VXLAN) is None
    assert [r["host"] for r in nodes] == ["ha", "ha"]
    assert k.link_get(nodes[0]["netns"], naming.UPLINK).mtu == 1500
    plain = cluster(nodes=2)
    k, nodes = build(plain)
    assert all("host" not in r for r in nodes)
    assert fabric.node_port(plain, 1) == (naming.fabric_ns("hn"), "n1")
    assert not any(naming.parse(n).role in (naming.MACHINE, naming.LAN) for n in k.netns_list(""))
