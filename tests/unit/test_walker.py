"""The one packet walker (netsim.trace.simulate.walker) over the one cluster view: its decisions on the
hand-written flannel and calico clusters, and the structure that keeps it the only one - nothing else in
netsim makes a forwarding decision, and trace's simulation, its reply walk and the topology's paths all go
through it."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from netsim import topology as t
from netsim.kernel.api import Fdb, Link, Neigh, Route
from netsim.trace import hops as H
from netsim.trace.resolve import TraceDestination, TraceSource
from netsim.trace.simulate import reply, walk
from netsim.trace.simulate import walker as W
from netsim.trace.view import FabricView, HostView
from tests.unit.topology import examples as ex

ROOT = Path(__file__).resolve().parents[2]
NODE1, NODE2 = W.Place(W.NODE, "node-1"), W.Place(W.NODE, "node-2")
POD_A, POD_B = W.Place(W.POD, "default/a"), W.Place(W.POD, "default/b")


# --- the decisions -------------------------------------------------------------------------------------

def test_flannel_vxlan_pod_to_pod_step_by_step():
    v = ex.flannel("vxlan")
    s = W.step(v, POD_A, "10.244.1.2")
    assert (s.action, s.to, s.dev, s.nexthop) == (W.FORWARD, NODE1, "eth0", "10.244.0.1")
    assert s.wires == (W.Wire("veth", "node-1", "veth0aaaaaaa"), W.Wire("bridge", "node-1", "cni0"))
    s = W.step(v, NODE1, "10.244.1.2")
    assert (s.action, s.to, s.dev, s.nexthop) == (W.FORWARD, NODE2, "flannel.1", "10.244.1.0")
    assert s.outer == {"src": "172.18.0.2", "dst": "172.18.0.3", "vni": 1, "port": 8472, "vtepMAC": ex.MAC2}
    assert [w.role for w in s.wires] == ["encap", "decap"]
    s = W.step(v, NODE2, "10.244.1.2")
    assert (s.to, s.wires) == (POD_B, (W.Wire("bridge", "node-2", "cni0"), W.Wire("veth", "node-2", "veth1aaaaaaa")))
    assert W.step(v, POD_B, "10.244.1.2").action == W.DELIVER
    assert [s.at for s in W.walk(v, POD_A, "10.244.1.2")] == [POD_A, NODE1, NODE2, POD_B]


def test_host_gw_crosses_the_underlay_to_the_next_node():
    s = W.step(ex.flannel("host-gw"), NODE1, "10.244.1.2")
    assert (s.to, s.dev, s.nexthop, s.wires, s.outer) == (NODE2, "eth0", "172.18.0.3", (W.Wire("underlay"),), None)


def test_calico_routed_veth_and_proxy_arp():
    v = ex.calico()
    s = W.step(v, POD_A, "10.244.150.2")
    assert (s.to, s.nexthop, s.wires) == (NODE1, "169.254.1.1", (W.Wire("veth", "node-1", "cali1111111111a"),))
    s = W.step(v, NODE2, "10.244.150.2")
    assert (s.to, s.wires) == (POD_B, (W.Wire("veth", "node-2", "cali2222222222b"),))


def test_drops_say_why():
    v = ex.calico()
    s = W.step(v, NODE1, "10.244.189.140")
    assert (s.action, s.why, s.route.kind) == (W.DROP, W.NOT_FORWARDING, "blackhole")
    f = ex.flannel("vxlan")
    f.nodes["node-1"].neighs.clear()
    assert W.step(f, NODE1, "10.244.1.2").why == W.NO_NEIGH
    f = ex.flannel("vxlan")
    f.nodes["node-1"].fdbs.clear()
    assert W.step(f, NODE1, "10.244.1.2").why == W.NO_FDB
    f = ex.flannel("vxlan")
    f.nodes["node-1"].fdbs[0] = Fdb("flannel.1", ex.MAC2, "172.18.9.9", True)
    s = W.step(f, NODE1, "10.244.1.2")
    assert (s.why, s.outer["dst"]) == (W.VTEP_UNKNOWN, "172.18.9.9")
    f = ex.flannel("vxlan")
    f.pods[1] = dataclasses.replace(f.pods[1], routes=())
    assert W.step(f, POD_B, "10.244.0.2").why == W.NO_ROUTE
    assert W.step(ex.flannel("vxlan"), NODE1, "10.244.0.99").why == W.NO_OWNER  # nobody on cni0 has it


def test_fabric_routes_when_read_and_is_the_underlay_router_when_not():
    v = ex.flannel("vxlan")  # its fabric's routes are read: the host subnet is its port h0
    s = W.step(v, W.Place(W.HOST, "client"), "172.18.0.3")
    assert (s.to, s.nexthop) == (W.Place(W.FABRIC), "203.0.113.1")
    s = W.step(v, W.Place(W.FABRIC), "172.18.0.3")
    assert (s.to, s.dev) == (NODE2, "underlay")
    assert W.step(v, W.Place(W.FABRIC), "203.0.113.10").to == W.Place(W.HOST, "client")
    assert W.step(v, W.Place(W.FABRIC), "10.244.1.2").why == W.NO_ROUTE  # pod IPs are not the underlay's
    v.fabric_facts = FabricView(v.fabric_facts.netns)  # unread: it knows node and host addresses only
    v.host_views["client"] = HostView("client", "203.0.113.10")
    assert W.step(v, W.Place(W.HOST, "client"), "172.18.0.3").to == W.Place(W.FABRIC)
    assert W.step(v, W.Place(W.FABRIC), "172.18.0.3").to == NODE2
    assert W.step(v, W.Place(W.FABRIC), "203.0.113.10").to == W.Place(W.HOST, "client")
    assert W.step(v, W.Place(W.FABRIC), "10.244.1.2").why == W.NO_ROUTE


def test_the_underlay_bridge_is_the_views_not_a_constant():
    """The fabric's bridge is named by the view (an emulated host may bring another segment)."""
    v = ex.flannel("host-gw")
    fab = v.fabric_facts
    v.fabric_facts = FabricView(fab.netns, "seg0", fab.links, [("seg0" if i == "underlay" else i, c) for i, c in fab.addrs],
                                [dataclasses.replace(r, dev="seg0") if r.dev == "underlay" else r for r in fab.routes])
    s = W.step(v, W.Place(W.FABRIC), "172.18.0.2")
    assert (s.to, s.dev) == (NODE1, "seg0")
    assert [st.at for st in W.walk(v, W.Place(W.HOST, "client"), "10.244.1.2")][-1] == W.Place(W.FABRIC)


def test_an_announced_ip_is_delivered_by_its_node():
    v = ex.calico()  # node-1 routes 172.18.255.1/32 to lo: the speaker's announcement
    s = W.step(v, W.Place(W.FABRIC), "172.18.255.1")
    assert s.to == NODE1
    s = W.step(v, NODE1, "172.18.255.1")
    assert (s.action, s.dev) == (W.DELIVER, "lo")


def test_walk_rewrites_the_destination_on_arrival_and_stops_a_loop():
    v = ex.flannel("vxlan")
    seen = []

    def arrive(at: W.Place, dst: str) -> str:
        seen.append((at, dst))
        return "10.244.1.2" if dst == "10.96.0.2" and at.kind == W.NODE else dst  # a DNAT at the first node

    steps = list(W.walk(v, POD_A, "10.96.0.2", arrive=arrive))
    assert steps[-1].at == POD_B and steps[-1].action == W.DELIVER
    assert seen[1] == (NODE1, "10.96.0.2")
    v.nodes["node-2"].routes.insert(0, Route("10.244.1.2/32", via="10.244.0.0", dev="flannel.1", onlink=True))
    v.nodes["node-2"].neighs.append(Neigh("flannel.1", "10.244.0.0", ex.MAC1, True))
    v.nodes["node-2"].fdbs.append(Fdb("flannel.1", ex.MAC1, "172.18.0.2", True))
    last = list(W.walk(v, POD_A, "10.244.1.2"))[-1]
    assert (last.action, last.why) == (W.DROP, W.LOOP)


def test_a_vxlan_peer_on_another_device_name_is_found_by_its_vni():
    v = ex.flannel("vxlan")
    n2 = v.nodes["node-2"]
    n2.links = {("vx9" if k == "flannel.1" else k): (dataclasses.replace(lk, name="vx9") if k == "flannel.1" else lk)
                for k, lk in n2.links.items()}
    assert W.step(v, NODE1, "10.244.1.2").wires[-1] == W.Wire("decap", "node-2", "vx9")


# --- the structure: one walker, used by everyone that walks ----------------------------------------------

DECISIONS = {"next_hop", "vxlan_peer", "gateway_dev"}  # the per-namespace forwarding decision's parts
LOOKUPS = {"lookup_route"}


def _calls(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            out.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return out


def test_nothing_but_the_walker_decides_where_a_packet_goes():
    """The forwarding decision (`next_hop`, `vxlan_peer`) is called by the walker only - the topology's
    tunnel edges read the VXLAN peers they draw with `vxlan_peer` too, which is the graph's content, not a
    walk - and the longest-prefix match is called by `netsim.kernel.routes` and the view's `route_for`
    (which describes observed hops). A second walker or route lookup fails here."""
    allowed = {
        "netsim/kernel/routes.py": DECISIONS | LOOKUPS,
        "netsim/trace/simulate/walker.py": DECISIONS,
        "netsim/trace/view.py": LOOKUPS,
        "netsim/topology.py": {"vxlan_peer"},
    }
    offenders = []
    for path in sorted([*(ROOT / "netsim").rglob("*.py"), *(ROOT / "cni_plugins").rglob("*.py")]):
        rel = str(path.relative_to(ROOT))
        extra = (_calls(path) & (DECISIONS | LOOKUPS | {"route_for"})) - allowed.get(rel, set())
        if rel == "netsim/trace/report/observed.py":
            extra -= {"route_for"}
        if extra:
            offenders.append(f"{rel}: {sorted(extra)}")
    assert not offenders, "forwarding decided outside the walker: " + "; ".join(offenders)
    src = (ROOT / "netsim/topology.py").read_text()
    for gone in ("def _segment", "def _crossing", "def _vxlan_peer", "TopologyData(", "class NodeData",
                 "class PodData", "class HostData", "class FabricData"):
        assert gone not in src, f"topology.py has its own {gone}"


def test_trace_reply_and_topology_all_walk_with_the_one_walker(monkeypatch):
    calls: list[str] = []
    real = W.step

    def counting(view, at, dst):
        calls.append(str(at))
        return real(view, at, dst)

    monkeypatch.setattr(W, "step", counting)
    v = ex.flannel("vxlan")
    g = t.build_graph(v)
    assert t.path_between(g, "default/a", "default/b")[-1] == "pod/default/b"
    topo = list(calls)
    calls.clear()
    a, b = v.pod("default/a"), v.pod("default/b")
    source = TraceSource("pod default/a", "pod", a.netns, a.ip, a.node, a.key)
    (path,) = walk.simulate(v, source, TraceDestination(b.key, "pod", b.ip, 80, "TCP", pod=b.key), 40000)
    assert path.verdict == H.VERDICT_DELIVERED and path.returned
    traced = list(calls)
    calls.clear()
    assert reply.walk_reply(v, source, "default/b", b.ip, a.ip, []).returned
    assert topo[:3] == ["pod/default/a", "node/node-1", "node/node-2"]
    assert "node/node-1" in traced and "node/node-2" in traced  # the request and its answer
    assert calls == ["pod/default/b", "node/node-2", "node/node-1", "pod/default/a"]


@pytest.mark.parametrize("make", [lambda: ex.flannel("vxlan"), lambda: ex.flannel("host-gw"), ex.calico],
                         ids=["flannel-vxlan", "flannel-host-gw", "calico-vxlan"])
def test_topology_paths_are_the_walkers_steps(make):
    """Every pod, node and host on a topology path is a namespace the walker stepped through, in its order
    (the fabric is a place when it routes, a wire when the underlay only bridges)."""
    v = make()
    g = t.build_graph(v)
    for src, dst in (("default/a", "default/b"), ("default/b", "default/a"), ("host/client", "node/node-2")):
        path = t.path_between(g, src, dst)
        l3 = [x for x in path if g.nodes[x]["kind"] in ("pod", "node", "host")]
        start = t._place(g, path[0])
        steps = W.walk(v, start, g.nodes[path[-1]]["ip"])
        assert l3 == [t._vertex(s.at) for s in steps if s.at.kind != W.FABRIC]


def test_a_host_port_on_the_fabric_is_a_view_fact():
    v = ex.flannel("vxlan")
    v.fabric_facts.links.append(Link("h1", 9, "veth", 1500, "02:00:00:00:00:09", True))
    v.fabric_facts.addrs.append(("h1", "198.51.100.1/24"))
    v.fabric_facts.routes.append(Route("198.51.100.0/24", dev="h1", scope="link"))
    v.host_views["far"] = HostView("far", "198.51.100.7", "", "198.51.100.1", [], "h1")
    v.hosts["far"] = "198.51.100.7"
    assert W.step(v, W.Place(W.FABRIC), "198.51.100.7").to == W.Place(W.HOST, "far")


def test_announcements_are_looked_up_for_underlay_addresses_only():
    """A trace's view knows the fabric by its addresses: the gateway is its own, and only an address on the
    underlay's subnet can be a node's announcement (no scan of every node for a packet leaving the cluster)."""
    v = ex.calico()
    v.fabric_facts = FabricView(v.fabric_facts.netns, "underlay", addrs=[("underlay", "172.18.0.1/16")])
    asked: list[str] = []
    real = v.announcing_node
    v.announcing_node = lambda ip: asked.append(ip) or real(ip)  # type: ignore[method-assign]
    s = W.step(v, NODE1, "8.8.8.8")
    assert (s.to, s.nexthop) == (W.Place(W.FABRIC), "172.18.0.1") and asked == []
    assert W.step(v, W.Place(W.FABRIC), "172.18.255.1").to == NODE1 and asked == ["172.18.255.1"]
