"""The one route lookup (netsim.kernel.routes) the packet walkers share: trace's cluster view and the
topology graph pick the same route for the same table."""

from __future__ import annotations

import pytest

from netsim import topology
from netsim.kernel.api import Fdb, Neigh, Route
from netsim.kernel.routes import covers, lookup_route, next_hop, prefix_len, vxlan_peer
from netsim.trace import hops as H
from netsim.trace.resolve import TraceDestination, TraceSource
from netsim.trace.simulate.walk import simulate
from netsim.trace.view import ClusterView, NodeKernelState
from tests.unit.topology import examples as ex

ROUTES = [Route("default", via="172.18.0.1", dev="eth0"), Route("10.244.0.0/16", dev="a"),
          Route("10.244.1.0/24", dev="flannel.1", onlink=True), Route("10.244.1.0/24", dev="second"),
          Route("not-a-network", dev="junk")]


def test_longest_prefix_first_of_equals_default_last():
    assert lookup_route(ROUTES, "10.244.1.7").dev == "flannel.1"
    assert lookup_route(ROUTES, "10.244.9.9").dev == "a"
    assert lookup_route(ROUTES, "8.8.8.8").dst == "default"
    assert lookup_route(ROUTES[1:], "8.8.8.8") is None


def test_destinations():
    assert prefix_len("default") == 0 and prefix_len("10.0.0.0/8") == 8 and prefix_len("junk") is None
    assert covers("default", "1.2.3.4") and covers("10.0.0.0/8", "10.1.1.1") and not covers("junk", "1.1.1.1")


def test_trace_and_topology_walk_with_the_same_lookup():
    assert topology.lookup_route is lookup_route
    nv = NodeKernelState(name="n", netns="ns", ip="172.18.0.2", routes=ROUTES)
    assert nv.route_for("10.244.1.7") is lookup_route(ROUTES, "10.244.1.7")


# --- one walker: topology's forward_hops and trace's simulation make the same forwarding decisions -------

def _both_walk(data: ClusterView, src: str, dst: str) -> tuple[list[topology.Hop], H.Path]:
    """The topology's path and trace's simulation over one cluster view (no iptables rules: nothing NATs)."""
    g = topology.build_graph(data)
    a, b = (next(p for p in data.pods if p.key == k) for k in (src, dst))
    hops = topology.forward_hops(g, topology.pod_id(a.namespace, a.name), b.ip)
    source = TraceSource(f"pod {a.key}", "pod", a.netns, a.ip, a.node, a.key)
    dest = TraceDestination(b.key, "pod", b.ip, 80, "TCP", pod=b.key)
    (path,) = simulate(data, source, dest, 40000)
    return hops, path


def _nodes_routed(hops: list[topology.Hop]) -> list[str]:
    return [h.vertex[len("node/"):] for h in hops if h.vertex.startswith("node/") and h.action == "route"]


def _upper_fdb_macs(data: ClusterView) -> ClusterView:
    """The same cluster with its FDB MACs printed in upper case (six bytes to the kernel either way)."""
    for n in data.nodes.values():
        n.fdbs = [Fdb(f.ifname, f.mac.upper(), f.dst, f.permanent) for f in n.fdbs]
    return data


@pytest.mark.parametrize("make", [lambda: ex.flannel("vxlan"), lambda: ex.flannel("host-gw"), ex.calico,
                                  lambda: _upper_fdb_macs(ex.flannel("vxlan")), lambda: _upper_fdb_macs(ex.calico())],
                         ids=["flannel-vxlan", "flannel-host-gw", "calico-vxlan", "flannel-FDB-MACs-upper",
                              "calico-FDB-MACs-upper"])
def test_topology_and_trace_agree_on_a_pod_to_pod_path(make):
    """Across nodes, both walkers deliver, route on the same nodes in the same order, and wrap the packet in
    the same outer header (source/destination node, VNI, UDP port) where the route is a VXLAN device."""
    hops, path = _both_walk(make(), "default/a", "default/b")
    assert path.verdict == H.VERDICT_DELIVERED and path.endpoint == "default/b"
    assert hops[-1].action == "deliver" and hops[-1].vertex == "pod/default/b"
    routed = [h.node for h in path.hops if h.component == H.ROUTING and h.direction != "reply"
              and not h.node.startswith("pod ")]
    assert _nodes_routed(hops) == routed == ["node-1", "node-2"]
    encap = [h.outer for h in hops if h.action == "encap"]
    if path.tunnel is None:
        assert encap == []
    else:
        assert [{k: o[k] for k in ("src", "dst", "vni", "port")} for o in encap] == [path.tunnel]


def test_one_next_hop_decision():
    """`next_hop` is the route, its device (through the gateway's connected route when only `via` is given,
    as the kernel resolves it) and the neighbour; `vxlan_peer` the VTEP MAC and outer destination."""
    routes = [Route("172.18.0.0/16", dev="eth0", scope="link"), Route("10.244.1.0/24", via="172.18.0.3"),
              Route("10.244.9.0/24", kind="blackhole")]
    step = next_hop(routes, "10.244.1.5")
    assert (step.route.dst, step.dev, step.nexthop, step.forwards) == ("10.244.1.0/24", "eth0", "172.18.0.3", True)
    assert not next_hop(routes, "10.244.9.1").forwards and next_hop(routes, "8.8.8.8").route is None
    neigh, fdb = vxlan_peer([Neigh("flannel.1", "10.244.1.0", "4a:00:00:00:00:02", True)],
                            [Fdb("flannel.1", "4A:00:00:00:00:02", None, True),
                             Fdb("flannel.1", "4A:00:00:00:00:02", "172.18.0.3", True)], "flannel.1", "10.244.1.0")
    assert neigh.mac == "4a:00:00:00:00:02" and fdb.dst == "172.18.0.3"
    assert vxlan_peer([], [], "flannel.1", "10.244.1.0") == (None, None)


def test_the_walkers_keep_no_forwarding_logic_of_their_own():
    """topology.py and trace's simulation decide the route, device and VXLAN peer through
    netsim.kernel.routes only: neither reads a route table, neighbour or FDB list itself."""
    import inspect

    from netsim.trace.simulate import reply, walk

    assert not hasattr(topology, "_dev_for_gateway")
    for mod in (topology, walk, reply):
        src = inspect.getsource(mod)
        for own in ("lookup_route(", "route_for(", ".neigh(", ".fdb(", '["neighs"].get(', '["fdb"].get('):
            assert own not in src, f"{mod.__name__} walks with its own {own}"


def test_one_node_reader_for_both_cluster_pictures():
    """trace's ClusterView and topology.collect read a node's kernel facts through one reader: the VXLAN
    device's neighbour and FDB entries (every neighbour entry for the topology graph), and netfilter state
    only for the simulation; a namespace that is gone has no facts."""
    import inspect

    from netsim.kernel.fake import FakeKernel
    from netsim.trace.observe import facts as V

    k = FakeKernel()
    k.netns_create("n1")
    k.vxlan_add("n1", "flannel.1", vni=1, dev="lo", local="172.18.0.2", port=8472)
    k.bridge_add("n1", "cni0")
    k.addr_add("n1", "cni0", "10.244.0.1/24")
    k.route_add("n1", Route("10.244.1.0/24", via="10.244.1.0", dev="flannel.1", onlink=True))
    k.neigh_replace("n1", "flannel.1", "10.244.1.0", "4a:00:00:00:00:02")
    k.neigh_replace("n1", "cni0", "10.244.0.5", "4a:00:00:00:00:05")
    k.fdb_replace("n1", "flannel.1", "4a:00:00:00:00:02", "172.18.0.3")
    traced = V.read_node(k, "node-1", "172.18.0.2", "n1")
    drawn = V.read_node(k, "node-1", "172.18.0.2", "n1", filters=False, all_neighs=True)
    assert [n.ip for n in traced.neighs] == ["10.244.1.0"] and {n.ip for n in drawn.neighs} == {"10.244.1.0",
                                                                                              "10.244.0.5"}
    assert traced.fdbs == drawn.fdbs and [f.dst for f in drawn.fdbs] == ["172.18.0.3"]
    assert set(drawn.links) == {"lo", "flannel.1", "cni0"} and drawn.routes == traced.routes
    assert drawn.iptables == "" and drawn.ipsets == {}
    assert next_hop(traced.routes, "10.244.1.9").dev == "flannel.1"
    gone = V.read_node(k, "node-9", "172.18.0.9", "n9")
    assert (gone.links, gone.routes, gone.addrs) == ({}, [], [])
    assert "read_node(" in inspect.getsource(V.read_cluster) and "read_node(" in inspect.getsource(V.from_cluster)
    assert "read_cluster(" in inspect.getsource(topology.collect)
