"""The pure topology builder and its queries, on hand-written flannel and calico clusters."""

from __future__ import annotations

import dataclasses

import pytest

from netsim import topology as t
from netsim.kernel.api import Route

from .examples import calico, flannel


def _edge_kinds(g, u, v) -> set[str]:
    return {a["kind"] for a in (g.get_edge_data(u, v) or {}).values()}


def test_flannel_vertices_carry_the_facts():
    g = t.build_graph(flannel())
    assert t.vertices(g, "node") == ["node/node-1", "node/node-2"]
    assert t.vertices(g, "pod") == ["pod/default/a", "pod/default/b"]
    assert t.vertices(g, "bridge") == ["dev/node-1/cni0", "dev/node-2/cni0"]
    assert t.vertices(g, "tunnel") == ["dev/node-1/flannel.1", "dev/node-2/flannel.1"]
    assert t.vertices(g, "veth") == ["dev/node-1/veth0aaaaaaa", "dev/node-2/veth1aaaaaaa"]
    assert t.vertices(g, "host") == ["host/client"]
    assert t.vertices(g, "fabric") == ["fabric"]
    n1 = g.nodes["node/node-1"]
    assert (n1["ip"], n1["pod_cidr"]) == ("172.18.0.2", "10.244.0.0/24")
    assert Route("10.244.1.0/24", via="10.244.1.0", dev="flannel.1", onlink=True) in n1["routes"]
    tun = g.nodes["dev/node-1/flannel.1"]
    assert (tun["vni"], tun["port"], tun["local"]) == (1, 8472, "172.18.0.2")
    assert tun["neighs"] == {"10.244.1.0": "4a:00:00:00:00:02"} and tun["fdb"] == {"4a:00:00:00:00:02": "172.18.0.3"}
    pod = g.nodes["pod/default/a"]
    assert (pod["ip"], pod["node"], pod["host_veth"]) == ("10.244.0.2", "node-1", "veth0aaaaaaa")
    svc = g.nodes["svc/default/web"]
    assert (svc["type"], svc["cluster_ip"], svc["ports"][0].node_port) == ("LoadBalancer", "10.96.0.2", 30000)


def test_flannel_edges_are_typed_and_symmetric_where_the_wire_is():
    g = t.build_graph(flannel())
    assert _edge_kinds(g, "pod/default/a", "dev/node-1/veth0aaaaaaa") == {"veth"}
    assert _edge_kinds(g, "dev/node-1/veth0aaaaaaa", "pod/default/a") == {"veth"}
    assert _edge_kinds(g, "dev/node-1/veth0aaaaaaa", "dev/node-1/cni0") == {"bridge-port"}
    assert _edge_kinds(g, "node/node-1", "dev/node-1/cni0") == {"route"}
    assert _edge_kinds(g, "node/node-1", "dev/node-1/flannel.1") == {"route"}
    assert _edge_kinds(g, "node/node-1", "fabric") == {"underlay"}
    assert _edge_kinds(g, "host/client", "fabric") == {"underlay"}
    # the bridged veth hangs off the bridge, not straight off the node
    assert not g.has_edge("node/node-1", "dev/node-1/veth0aaaaaaa")
    tunnels = t.edges(g, "vxlan-tunnel")
    assert {(u, v) for u, v, _ in tunnels} == {("dev/node-1/flannel.1", "dev/node-2/flannel.1"),
                                               ("dev/node-2/flannel.1", "dev/node-1/flannel.1")}
    e = g.edges["dev/node-1/flannel.1", "dev/node-2/flannel.1", "vxlan-tunnel"]
    assert (e["vni"], e["port"], e["src_ip"], e["dst_ip"], e["prefixes"]) == \
        (1, 8472, "172.18.0.2", "172.18.0.3", ["10.244.1.0/24"])
    assert {v for _, v, _ in t.edges(g, "endpoint")} == {"pod/default/a", "pod/default/b"}
    assert [(u, v) for u, v, _ in t.edges(g, "frontend")] == [("vip/172.18.255.1", "svc/default/web")]
    assert not t.edges(g, "announce")  # no node has the LB IP on lo in this example


def test_a_tunnel_edge_needs_a_known_peer():
    data = flannel()
    data.nodes["node-1"].fdbs[0] = data.nodes["node-1"].fdbs[0].__class__("flannel.1", "4a:00:00:00:00:02",
                                                                         "172.18.9.9", True)
    g = t.build_graph(data)
    assert [(u, v) for u, v, _ in t.edges(g, "vxlan-tunnel")] == [("dev/node-2/flannel.1", "dev/node-1/flannel.1")]


def test_flannel_pod_to_pod_across_nodes_goes_through_both_nodes_and_the_tunnel():
    g = t.build_graph(flannel())
    assert t.path_between(g, "default/a", "default/b") == [
        "pod/default/a", "dev/node-1/veth0aaaaaaa", "dev/node-1/cni0", "node/node-1", "dev/node-1/flannel.1",
        "dev/node-2/flannel.1", "node/node-2", "dev/node-2/cni0", "dev/node-2/veth1aaaaaaa", "pod/default/b"]
    lines = t.describe_path(g, t.path_between(g, "10.244.0.2", "10.244.1.2"))
    assert "dev/node-1/flannel.1 -[vxlan-tunnel]-> dev/node-2/flannel.1 (VNI 1, 172.18.0.2 -> 172.18.0.3:8472)" \
        in lines


def test_host_gw_goes_over_the_underlay():
    g = t.build_graph(flannel("host-gw"))
    assert not t.vertices(g, "tunnel")
    assert t.path_between(g, "default/a", "default/b") == [
        "pod/default/a", "dev/node-1/veth0aaaaaaa", "dev/node-1/cni0", "node/node-1", "fabric", "node/node-2",
        "dev/node-2/cni0", "dev/node-2/veth1aaaaaaa", "pod/default/b"]
    e = g.edges["node/node-1", "node/node-2", "route"]
    assert (e["via"], e["routes"]) == ("172.18.0.3", ["10.244.1.0/24"])


def test_calico_routed_veths_found_from_the_node_routes():
    g = t.build_graph(calico())
    assert g.nodes["pod/default/a"]["host_veth"] == "cali1111111111a"
    assert _edge_kinds(g, "node/node-1", "dev/node-1/cali1111111111a") == {"route"}
    assert g.edges["node/node-1", "dev/node-1/cali1111111111a", "route"]["routes"] == ["10.244.189.130/32"]
    assert t.path_between(g, "default/a", "default/b") == [
        "pod/default/a", "dev/node-1/cali1111111111a", "node/node-1", "dev/node-1/vxlan.calico",
        "dev/node-2/vxlan.calico", "node/node-2", "dev/node-2/cali2222222222b", "pod/default/b"]
    e = g.edges["dev/node-2/vxlan.calico", "dev/node-1/vxlan.calico", "vxlan-tunnel"]
    assert (e["vni"], e["port"], e["prefixes"]) == (4096, 4789, ["10.244.189.128/26"])


def test_service_is_translated_at_the_first_node():
    g = t.build_graph(flannel())
    assert t.path_between(g, "default/a", "svc/default/web", endpoint="default/b") == [
        "pod/default/a", "dev/node-1/veth0aaaaaaa", "dev/node-1/cni0", "node/node-1", "svc/default/web",
        "dev/node-1/flannel.1", "dev/node-2/flannel.1", "node/node-2", "dev/node-2/cni0",
        "dev/node-2/veth1aaaaaaa", "pod/default/b"]
    # by default the first ready endpoint; the ClusterIP resolves to the service too
    assert t.path_between(g, "default/b", "10.96.0.2")[-1] == "pod/default/a"
    with pytest.raises(t.PathError, match="not an endpoint"):
        t.path_between(g, "default/a", "svc/default/web", endpoint="default/zzz")
    with pytest.raises(t.PathError, match="no endpoints"):
        t.path_between(g, "default/a", "svc/default/kubernetes")


def test_external_host_to_a_loadbalancer_ip_enters_at_the_announcing_node():
    g = t.build_graph(calico())
    assert [(u, v) for u, v, _ in t.edges(g, "announce")] == [("node/node-1", "vip/172.18.255.1")]
    assert t.path_between(g, "host/client", "vip/172.18.255.1", endpoint="default/b") == [
        "host/client", "fabric", "node/node-1", "vip/172.18.255.1", "svc/default/web", "dev/node-1/vxlan.calico",
        "dev/node-2/vxlan.calico", "node/node-2", "dev/node-2/cali2222222222b", "pod/default/b"]


def test_queries_by_ip():
    g = t.build_graph(calico())
    assert t.pod_by_ip(g, "10.244.150.2") == "pod/default/b"
    assert t.pod_by_ip(g, "10.244.150.3") is None
    assert t.node_of_ip(g, "10.244.150.2") == "node-2"  # a pod
    assert t.node_of_ip(g, "172.18.0.3") == "node-2"  # the node
    assert t.node_of_ip(g, "10.244.189.128") == "node-1"  # its tunnel address
    assert t.node_of_ip(g, "10.244.189.140") == "node-1"  # unassigned, in node-1's block
    assert t.node_of_ip(g, "172.18.255.1") == "node-1"  # the LB IP it announces
    assert t.node_of_ip(g, "10.244.1.7") == "node-2"  # podCIDR as a last resort
    assert t.node_of_ip(g, "8.8.8.8") is None
    assert t.service_by_ip(g, "10.96.0.2") == "svc/default/web"
    assert t.resolve(g, "172.18.0.2") == "node/node-1"
    with pytest.raises(t.PathError, match="no such"):
        t.resolve(g, "nope/nothing")


def test_dead_ends_are_reported_with_the_partial_path():
    g = t.build_graph(calico())
    with pytest.raises(t.PathError, match="blackhole") as exc:
        t.forward(g, "node/node-1", "10.244.189.140")
    assert exc.value.partial == ["node/node-1"]
    data = flannel()
    data.pods[0] = dataclasses.replace(data.pods[0], routes=())
    with pytest.raises(t.PathError, match="no route"):
        t.path_between(t.build_graph(data), "default/a", "default/b")


def test_shortest_path_over_chosen_edge_kinds():
    g = t.build_graph(flannel())
    # unrouted, the underlay is the shortest way between nodes...
    assert "fabric" in t.path_between(g, "node/node-1", "dev/node-2/cni0", routed=False)
    # ...unless only overlay kinds are allowed
    overlay = t.path_between(g, "node/node-1", "dev/node-2/cni0", routed=False,
                             kinds=("route", "vxlan-tunnel", "bridge-port", "veth"))
    assert overlay == ["node/node-1", "dev/node-1/flannel.1", "dev/node-2/flannel.1", "node/node-2", "dev/node-2/cni0"]
    with pytest.raises(t.PathError, match="no path"):
        t.path_between(g, "node/node-1", "dev/node-2/cni0", routed=False, kinds=("veth",))


def test_longest_prefix_match():
    routes = [Route("default", via="1.1.1.1", dev="eth0"), Route("10.0.0.0/8", dev="a"), Route("10.1.0.0/16", dev="b")]
    assert t.lookup_route(routes, "10.1.2.3").dev == "b"
    assert t.lookup_route(routes, "10.2.2.3").dev == "a"
    assert t.lookup_route(routes, "192.0.2.1").dev == "eth0"
    assert t.lookup_route(routes[1:], "192.0.2.1") is None


def test_without_namespaces_drops_pods_veths_services_and_orphan_vips():
    g = t.without_namespaces(t.build_graph(flannel()), {"default"})
    assert not t.vertices(g, "pod") and not t.vertices(g, "veth") and not t.vertices(g, "service")
    assert not t.vertices(g, "vip")
    assert t.vertices(g, "node") == ["node/node-1", "node/node-2"]


def test_forward_hops_say_what_happens_where():
    g = t.build_graph(flannel())
    hops = t.forward_hops(g, "pod/default/a", "10.96.0.2", endpoint="default/b")
    assert [(h.vertex, h.action) for h in hops] == [
        ("pod/default/a", "send"), ("dev/node-1/veth0aaaaaaa", "cross"), ("dev/node-1/cni0", "cross"),
        ("node/node-1", "arrive"), ("svc/default/web", "dnat"), ("node/node-1", "route"),
        ("dev/node-1/flannel.1", "encap"), ("dev/node-2/flannel.1", "decap"), ("node/node-2", "route"),
        ("dev/node-2/cni0", "cross"), ("dev/node-2/veth1aaaaaaa", "cross"), ("pod/default/b", "deliver")]
    send, dnat, route1, encap = hops[0], hops[4], hops[5], hops[6]
    assert (send.route.dst, send.dev, send.nexthop) == ("default", "eth0", "10.244.0.1")
    assert dnat.translated == "10.244.1.2"
    assert (route1.route.dst, route1.dev, route1.nexthop) == ("10.244.1.0/24", "flannel.1", "10.244.1.0")
    assert encap.outer == {"src": "172.18.0.2", "dst": "172.18.0.3", "vni": 1, "port": 8472,
                           "vtepMAC": "4a:00:00:00:00:02"}
    assert [(h.vertex, h.action) for h in t.forward_hops(g, "pod/default/a", "10.244.0.2")] == \
        [("pod/default/a", "deliver")]


def test_a_node_port_is_translated_at_the_node_it_was_sent_to():
    g = t.build_graph(flannel())
    sid = t.service_by_node_port(g, 30000)
    assert sid == "svc/default/web" and t.service_by_node_port(g, 30000, "UDP") is None
    path = t.forward(g, "host/client", "172.18.0.3", service=sid, endpoint="default/a")
    assert path == ["host/client", "fabric", "node/node-2", "svc/default/web", "dev/node-2/flannel.1",
                    "dev/node-1/flannel.1", "node/node-1", "dev/node-1/cni0", "dev/node-1/veth0aaaaaaa",
                    "pod/default/a"]
    # without the service it is just the node's own address
    assert t.forward(g, "host/client", "172.18.0.3") == ["host/client", "fabric", "node/node-2"]
