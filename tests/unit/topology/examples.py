"""Hand-written cluster views for the unit tests: what `topology.collect` reads from a 2-node flannel cluster
(VXLAN or host-gw) and a 2-node calico VXLAN cluster, with the kernel objects those plugins program."""

from __future__ import annotations

from netsim.kernel.api import Fdb, Link, Neigh, Route
from netsim.trace.view import (
    ClusterView,
    EndpointData,
    FabricView,
    HostView,
    NodeKernelState,
    PodKernelState,
    ServiceData,
    ServicePortData,
    make_view,
)

MAC1, MAC2 = "4a:00:00:00:00:01", "4a:00:00:00:00:02"


def _link(name: str, index: int, kind: str, master: str | None = None, vxlan: dict | None = None,
          mtu: int = 1450) -> Link:
    return Link(name, index, kind, mtu, f"02:00:00:00:00:{index:02x}", True, master=master, vxlan=vxlan)


def fabric() -> FabricView:
    return FabricView(netns="netsim-x-fabric", links=[_link("underlay", 2, "bridge", mtu=1500),
                                                      _link("n0", 3, "veth", "underlay"),
                                                      _link("n1", 4, "veth", "underlay"), _link("h0", 5, "veth")],
                      addrs=[("lo", "127.0.0.1/8"), ("underlay", "172.18.0.1/16"), ("h0", "203.0.113.1/24")],
                      routes=[Route("172.18.0.0/16", dev="underlay", scope="link"),
                              Route("203.0.113.0/24", dev="h0", scope="link")])


def host() -> HostView:
    return HostView("client", "203.0.113.10", "netsim-x-host-client", "203.0.113.1",
                    [Route("default", via="203.0.113.1", dev="eth0"),
                     Route("203.0.113.0/24", dev="eth0", scope="link")], port="h0")


def services(web_pods: list[tuple[str, str, str]]) -> list[ServiceData]:
    return [ServiceData("default", "web", "LoadBalancer", "10.96.0.2",
                        [ServicePortData(80, "TCP", "", 8080, 30000)], [], ["172.18.255.1"],
                        [EndpointData(ip, f"default/{name}", node) for name, ip, node in web_pods]),
            ServiceData("default", "kubernetes", "ClusterIP", "10.96.0.1", [ServicePortData(443, "TCP")])]


def _node(name: str, ip: str, pod_cidr: str, netns: str, links: list[Link], addrs: list[tuple[str, str]],
          routes: list[Route], neighs: list[Neigh], fdbs: list[Fdb]) -> NodeKernelState:
    return NodeKernelState(name, ip, netns, addrs, routes, {lk.name: lk for lk in links}, neighs, fdbs, pod_cidr=pod_cidr)


def _pod(namespace: str, name: str, ip: str, node: str, *, host_veth: str | None = None, routes: list[Route],
         labels: dict[str, str] | None = None) -> PodKernelState:
    return PodKernelState(f"{namespace}/{name}", ip, node, "", dict(labels or {}), host_veth=host_veth, routes=tuple(routes))


def flannel(backend: str = "vxlan") -> ClusterView:
    nodes = []
    for i, (name, ip) in enumerate([("node-1", "172.18.0.2"), ("node-2", "172.18.0.3")]):
        other_i = 1 - i
        other_ip = "172.18.0.3" if i == 0 else "172.18.0.2"
        links = [_link("lo", 1, "loopback"), _link("eth0", 2, "veth", mtu=1500), _link("cni0", 4, "bridge"),
                 _link(f"veth{i}aaaaaaa", 5, "veth", "cni0")]
        addrs = [("lo", "127.0.0.1/8"), ("eth0", f"{ip}/16"), ("cni0", f"10.244.{i}.1/24")]
        routes = [Route("default", via="172.18.0.1", dev="eth0"), Route("172.18.0.0/16", dev="eth0", scope="link"),
                  Route(f"10.244.{i}.0/24", dev="cni0", scope="link")]
        neighs, fdbs = [], []
        if backend == "vxlan":
            links.append(_link("flannel.1", 3, "vxlan", vxlan={"vni": 1, "port": 8472, "local": ip}))
            addrs.append(("flannel.1", f"10.244.{i}.0/32"))
            routes.append(Route(f"10.244.{other_i}.0/24", via=f"10.244.{other_i}.0", dev="flannel.1", onlink=True))
            peer_mac = MAC2 if i == 0 else MAC1
            neighs.append(Neigh("flannel.1", f"10.244.{other_i}.0", peer_mac, True))
            fdbs.append(Fdb("flannel.1", peer_mac, other_ip, True))
        else:
            routes.append(Route(f"10.244.{other_i}.0/24", via=other_ip, dev="eth0"))
        nodes.append(_node(name, ip, f"10.244.{i}.0/24", f"netsim-x-node-{name}", links, addrs, routes,
                              neighs, fdbs))
    pods = [_pod("default", "a", "10.244.0.2", "node-1", host_veth="veth0aaaaaaa",
                    routes=[Route("default", via="10.244.0.1", dev="eth0"),
                            Route("10.244.0.0/24", dev="eth0", scope="link")], labels={"app": "web"}),
            _pod("default", "b", "10.244.1.2", "node-2", host_veth="veth1aaaaaaa",
                    routes=[Route("default", via="10.244.1.1", dev="eth0"),
                            Route("10.244.1.0/24", dev="eth0", scope="link")], labels={"app": "web"})]
    return make_view("x", "flannel", backend, fabric(), nodes, [host()], pods,
                        services([("a", "10.244.0.2", "node-1"), ("b", "10.244.1.2", "node-2")]))


def calico() -> ClusterView:
    n1 = _node("node-1", "172.18.0.2", "10.244.0.0/24", "netsim-x-node-node-1",
                  [_link("lo", 1, "loopback"), _link("eth0", 2, "veth", mtu=1500),
                   _link("vxlan.calico", 3, "vxlan", vxlan={"vni": 4096, "port": 4789, "local": "172.18.0.2"}),
                   _link("cali1111111111a", 4, "veth")],
                  [("eth0", "172.18.0.2/16"), ("vxlan.calico", "10.244.189.128/32")],
                  [Route("default", via="172.18.0.1", dev="eth0"), Route("172.18.0.0/16", dev="eth0", scope="link"),
                   Route("10.244.189.128/26", kind="blackhole", proto=80),
                   Route("10.244.189.130/32", dev="cali1111111111a", scope="link"),
                   Route("10.244.150.0/26", via="10.244.150.0", dev="vxlan.calico", onlink=True),
                   Route("172.18.255.1/32", dev="lo")],
                  [Neigh("vxlan.calico", "10.244.150.0", MAC2, True)], [Fdb("vxlan.calico", MAC2, "172.18.0.3", True)])
    n2 = _node("node-2", "172.18.0.3", "10.244.1.0/24", "netsim-x-node-node-2",
                  [_link("lo", 1, "loopback"), _link("eth0", 2, "veth", mtu=1500),
                   _link("vxlan.calico", 3, "vxlan", vxlan={"vni": 4096, "port": 4789, "local": "172.18.0.3"}),
                   _link("cali2222222222b", 4, "veth")],
                  [("eth0", "172.18.0.3/16"), ("vxlan.calico", "10.244.150.0/32")],
                  [Route("default", via="172.18.0.1", dev="eth0"), Route("172.18.0.0/16", dev="eth0", scope="link"),
                   Route("10.244.150.0/26", kind="blackhole", proto=80),
                   Route("10.244.150.2/32", dev="cali2222222222b", scope="link"),
                   Route("10.244.189.128/26", via="10.244.189.128", dev="vxlan.calico", onlink=True)],
                  [Neigh("vxlan.calico", "10.244.189.128", MAC1, True)],
                  [Fdb("vxlan.calico", MAC1, "172.18.0.2", True)])
    pod_routes = [Route("default", via="169.254.1.1", dev="eth0"), Route("169.254.1.1/32", dev="eth0", scope="link")]
    # host_veth left out on purpose: the builder finds it from the node's /32 route, as calico programs it
    pods = [_pod("default", "a", "10.244.189.130", "node-1", routes=pod_routes),
            _pod("default", "b", "10.244.150.2", "node-2", routes=pod_routes)]
    return make_view("x", "calico", "vxlan", fabric(), [n1, n2], [host()], pods,
                        services([("a", "10.244.189.130", "node-1"), ("b", "10.244.150.2", "node-2")]))
