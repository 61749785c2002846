"""The cluster's topology as a networkx graph: what is wired to what, and the routing facts on each hop.

Two halves, so the graph logic is testable without root:

* `collect(cluster) -> TopologyData` reads a live cluster: the state file (nodes, hosts, fabric), the kernel
  (links, addresses, routes, neighbours and VXLAN FDB entries of every node, the fabric, hosts and pods)
  and the store (pods, Services, EndpointSlices).
* `build_graph(data) -> nx.MultiDiGraph` is pure: plain data in, graph out.

Vertices (id -> `kind` attribute):
    fabric                     fabric   the underlay bridge and the underlay's router (fabric netns)
    node/<name>                node     a node's netns as an L3 box (ip, podCIDR, routes, neighs, fdbs)
    host/<name>                host     an external host
    pod/<ns>/<name>            pod      a pod's netns (ip, node, routes)
    dev/<node>/<ifname>        bridge | tunnel | veth   devices in a node netns (cni0, flannel.1 /
                                        vxlan.calico with vni/port/local, host-side veths vethXXXX / caliXXXX)
    svc/<ns>/<name>            service  ClusterIP, type, ports
    vip/<ip>                   vip      a LoadBalancer ingress IP or external IP of a Service
Edges (`kind` attribute, see EDGE_KINDS): `veth` pod<->host veth, `bridge-port` veth<->bridge, `route`
node<->device the node routes through (and node->node for host-gw / BGP routes via another node's IP),
`underlay` node/host<->fabric, `vxlan-tunnel` tunnel->tunnel (from the source node's FDB: outer src/dst IP,
VNI, port, the prefixes routed through it), `endpoint` service->pod, `frontend` vip->service, `announce`
node->vip (the node that answers for a LoadBalancer IP, as MetalLB L2 does).

Every L3 vertex (pod, node, host, fabric) carries `routes` (netsim.kernel.api.Route), `addrs`
((ifname, cidr)) and `ifaces` (ifname -> the vertex that interface leads to), which is what `forward_hops`
(and the packet tracer's simulation) needs to follow a packet: longest-prefix match, then the device, then
the L2 owner of the next hop on that segment (bridge ports, the underlay, or the VXLAN neighbour + FDB entry
that gives the outer destination, as flannel `pkg/backend/vxlan/vxlan_network.go` and calico felix
`vxlan_mgr.go` program them). Tunnel vertices carry `neighs` (VTEP IP -> MAC) and `fdb` (MAC -> remote
node IP) of their device; node vertices the raw `neighs` and `fdbs` lists.

Queries: `pod_by_ip`, `service_by_ip`, `service_by_node_port`, `node_of_ip`, `resolve` (a selector or IP
to a vertex), `path_between(g, a, b)` (the vertex list), `forward_hops` (per hop: the route taken, the out
device and next hop, the DNAT choice, the VXLAN outer header), `describe_path`, `without_namespaces`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx

from netsim.kernel.api import Fdb, Link, Neigh, Route
from netsim.kernel.routes import covers, next_hop, vxlan_peer
from netsim.kernel.routes import lookup_route as lookup_route  # the shared lookup, re-exported for callers

EDGE_KINDS = ("veth", "bridge-port", "route", "underlay", "vxlan-tunnel", "endpoint", "frontend", "announce")
DATA_PLANE_KINDS = ("veth", "bridge-port", "route", "underlay", "vxlan-tunnel")
L3_KINDS = ("pod", "node", "host", "fabric")
FABRIC = "fabric"


class PathError(Exception):
    """No path: the routing facts lead nowhere (no route, a blackhole, an unknown next hop, a loop)."""

    def __init__(self, message: str, partial: Sequence[str] = ()):
        super().__init__(message)
        self.partial = list(partial)


# --- plain data ----------------------------------------------------------------------------------

@dataclass
class NodeData:
    name: str
    ip: str
    pod_cidr: str
    netns: str = ""
    links: list[Link] = field(default_factory=list)
    addrs: list[tuple[str, str]] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    neighs: list[Neigh] = field(default_factory=list)
    fdbs: list[Fdb] = field(default_factory=list)


@dataclass
class HostData:
    name: str
    ip: str
    netns: str = ""
    gateway: str = ""
    routes: list[Route] = field(default_factory=list)
    port: str | None = None  # the fabric port (h0, h1, ...) it hangs off


@dataclass
class FabricData:
    netns: str = ""
    bridge: str = "underlay"
    links: list[Link] = field(default_factory=list)
    addrs: list[tuple[str, str]] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)


@dataclass
class PodData:
    namespace: str
    name: str
    ip: str
    node: str
    netns: str = ""
    host_veth: str | None = None  # host-side veth in the node netns; found from the node's /32 route if None
    ifname: str = "eth0"
    routes: list[Route] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    phase: str = "Running"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class ServicePortData:
    port: int
    protocol: str = "TCP"
    name: str = ""
    target_port: int | str | None = None
    node_port: int | None = None


@dataclass
class EndpointData:
    ip: str
    pod: str | None = None  # "ns/name"
    node: str | None = None
    ready: bool = True


@dataclass
class ServiceData:
    namespace: str
    name: str
    type: str = "ClusterIP"
    cluster_ip: str | None = None
    ports: list[ServicePortData] = field(default_factory=list)
    external_ips: list[str] = field(default_factory=list)
    lb_ips: list[str] = field(default_factory=list)
    endpoints: list[EndpointData] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class TopologyData:
    cluster: str
    plugin: str = ""
    backend: str = ""
    fabric: FabricData = field(default_factory=FabricData)
    nodes: list[NodeData] = field(default_factory=list)
    hosts: list[HostData] = field(default_factory=list)
    pods: list[PodData] = field(default_factory=list)
    services: list[ServiceData] = field(default_factory=list)


# --- vertex ids ----------------------------------------------------------------------------------

def node_id(name: str) -> str:
    return f"node/{name}"


def host_id(name: str) -> str:
    return f"host/{name}"


def pod_id(namespace: str, name: str) -> str:
    return f"pod/{namespace}/{name}"


def dev_id(node: str, ifname: str) -> str:
    return f"dev/{node}/{ifname}"


def svc_id(namespace: str, name: str) -> str:
    return f"svc/{namespace}/{name}"


def vip_id(ip: str) -> str:
    return f"vip/{ip}"


# --- the pure builder ----------------------------------------------------------------------------

def _ip(cidr: str) -> str:
    return cidr.split("/", 1)[0]


def build_graph(data: TopologyData) -> nx.MultiDiGraph:
    """The topology graph of `data` (see the module docstring for vertices and edges)."""
    g = nx.MultiDiGraph()
    # (not as constructor keywords: networkx reserves `backend` for its dispatch machinery)
    g.graph.update(cluster=data.cluster, plugin=data.plugin, backend=data.backend)
    node_by_ip = {n.ip: n.name for n in data.nodes}
    underlay_owners: dict[str, str] = {}  # IP on the underlay segment -> L3 vertex answering for it

    def link2(a: str, b: str, kind: str, **attrs: Any) -> None:
        g.add_edge(a, b, key=kind, kind=kind, **attrs)
        g.add_edge(b, a, key=kind, kind=kind, **attrs)

    # The fabric: underlay bridge + router for external hosts' subnets.
    fab = data.fabric
    g.add_node(FABRIC, kind="fabric", label="underlay", netns=fab.netns, bridge=fab.bridge, addrs=list(fab.addrs),
               routes=list(fab.routes), ifaces={fab.bridge: FABRIC, "lo": FABRIC})
    for _, cidr in fab.addrs:
        if not cidr.startswith("127."):
            underlay_owners[_ip(cidr)] = FABRIC

    # Nodes and their devices.
    for n in data.nodes:
        nid = node_id(n.name)
        ifaces: dict[str, str] = {"eth0": FABRIC, "lo": nid}
        for link in n.links:
            if link.kind == "bridge":
                ifaces[link.name] = dev_id(n.name, link.name)
                g.add_node(dev_id(n.name, link.name), kind="bridge", node=n.name, ifname=link.name, mtu=link.mtu,
                           mac=link.mac, addrs=[c for i, c in n.addrs if i == link.name], owners={})
            elif link.kind == "vxlan":
                vx = link.vxlan or {}
                tid = dev_id(n.name, link.name)
                ifaces[link.name] = tid
                g.add_node(tid, kind="tunnel", node=n.name, ifname=link.name, mtu=link.mtu, mac=link.mac,
                           vni=vx.get("vni"), port=vx.get("port"), local=vx.get("local") or n.ip,
                           addrs=[c for i, c in n.addrs if i == link.name],
                           neighs={x.ip: x.mac for x in n.neighs if x.ifname == link.name},
                           fdb={f.mac: f.dst for f in n.fdbs if f.ifname == link.name and f.dst})
            elif link.kind == "veth" and link.name != "eth0":
                ifaces[link.name] = dev_id(n.name, link.name)
                g.add_node(dev_id(n.name, link.name), kind="veth", node=n.name, ifname=link.name, mtu=link.mtu,
                           mac=link.mac, master=link.master, pod=None)
        g.add_node(nid, kind="node", name=n.name, ip=n.ip, pod_cidr=n.pod_cidr, netns=n.netns,
                   addrs=list(n.addrs), routes=list(n.routes), neighs=list(n.neighs), fdbs=list(n.fdbs),
                   ifaces=ifaces)
        underlay_owners[n.ip] = nid
        link2(nid, FABRIC, "underlay", ifname="eth0", ip=n.ip)
        for ifname, vid in ifaces.items():
            if vid in (nid, FABRIC):
                continue
            attrs = g.nodes[vid]
            if attrs["kind"] == "veth" and attrs["master"]:
                continue  # reached through its bridge
            dsts = [r.dst for r in n.routes if r.dev == ifname]
            link2(nid, vid, "route", dev=ifname, routes=dsts)
        for vid in ifaces.values():
            if g.nodes[vid].get("kind") == "bridge":
                for cidr in g.nodes[vid]["addrs"]:
                    g.nodes[vid]["owners"][_ip(cidr)] = [nid]

    # Pods: veth to the node, through the bridge when the host end is enslaved.
    for p in data.pods:
        pid = pod_id(p.namespace, p.name)
        node = next((n for n in data.nodes if n.name == p.node), None)
        host_if = p.host_veth
        if host_if is None and node is not None and p.ip:
            host_if = next((r.dev for r in node.routes if r.dst == f"{p.ip}/32" and r.dev), None)
        vid = dev_id(p.node, host_if) if host_if else None
        if vid is not None and vid not in g:
            vid = None  # the node has no such link (gone, or not collected)
        g.add_node(pid, kind="pod", namespace=p.namespace, name=p.name, key=p.key, ip=p.ip, node=p.node,
                   netns=p.netns, host_veth=host_if if vid else None, labels=dict(p.labels), phase=p.phase,
                   addrs=[(p.ifname, f"{p.ip}/32")] if p.ip else [], routes=list(p.routes),
                   ifaces={p.ifname: vid} if vid else {})
        if vid is None:
            continue
        g.nodes[vid]["pod"] = pid
        link2(pid, vid, "veth", pod_if=p.ifname, host_if=host_if)
        master = g.nodes[vid]["master"]
        if master:
            bid = dev_id(p.node, master)
            if bid in g:
                link2(vid, bid, "bridge-port", port=host_if)
                if p.ip:
                    g.nodes[bid]["owners"][p.ip] = [vid, pid]

    # VXLAN tunnels: from each node's neighbour + FDB entries on its VXLAN device (its view of the peers).
    for n in data.nodes:
        for tid in [v for v in g.successors(node_id(n.name)) if g.nodes[v].get("kind") == "tunnel"]:
            t = g.nodes[tid]
            for vtep_ip, mac in t["neighs"].items():
                _, entry = vxlan_peer(n.neighs, n.fdbs, t["ifname"], vtep_ip)
                outer = entry.dst if entry else None
                remote = node_by_ip.get(outer or "")
                if remote is None:
                    continue
                rtid = dev_id(remote, t["ifname"])
                if rtid not in g:
                    continue
                prefixes = [r.dst for r in n.routes if r.dev == t["ifname"] and r.via == vtep_ip]
                g.add_edge(tid, rtid, key="vxlan-tunnel", kind="vxlan-tunnel", vni=t["vni"], port=t["port"],
                           src_ip=t["local"], dst_ip=outer, vtep_ip=vtep_ip, vtep_mac=mac, prefixes=prefixes)
        # host-gw / BGP: routes via another node's IP on the underlay.
        for r in n.routes:
            peer = node_by_ip.get(r.via or "")
            if peer is not None and peer != n.name and r.dev in (None, "eth0"):
                if g.has_edge(node_id(n.name), node_id(peer), "route"):
                    g.edges[node_id(n.name), node_id(peer), "route"]["routes"].append(r.dst)
                else:
                    g.add_edge(node_id(n.name), node_id(peer), key="route", kind="route", dev="eth0",
                               via=r.via, routes=[r.dst])

    # External hosts.
    for h in data.hosts:
        hid = host_id(h.name)
        g.add_node(hid, kind="host", name=h.name, ip=h.ip, netns=h.netns, gateway=h.gateway,
                   addrs=[("eth0", f"{h.ip}/32")], routes=list(h.routes), ifaces={"eth0": FABRIC, "lo": hid})
        link2(hid, FABRIC, "underlay", ifname="eth0", ip=h.ip, port=h.port)
        underlay_owners.setdefault(h.ip, hid)
        if h.port:
            g.nodes[FABRIC]["ifaces"][h.port] = hid

    # Services, their endpoints and frontends.
    pods_by_ip = {p.ip: pod_id(p.namespace, p.name) for p in data.pods if p.ip}
    for s in data.services:
        sid = svc_id(s.namespace, s.name)
        g.add_node(sid, kind="service", namespace=s.namespace, name=s.name, key=s.key, type=s.type,
                   cluster_ip=s.cluster_ip, ports=list(s.ports), external_ips=list(s.external_ips),
                   lb_ips=list(s.lb_ips), endpoints=list(s.endpoints))
        for ep in s.endpoints:
            target = pod_id(*ep.pod.split("/", 1)) if ep.pod else pods_by_ip.get(ep.ip)
            if target is None or target not in g:
                continue
            g.add_edge(sid, target, key="endpoint", kind="endpoint", ip=ep.ip, ready=ep.ready)
        for ip in [*s.lb_ips, *s.external_ips]:
            vid = vip_id(ip)
            if vid not in g:
                g.add_node(vid, kind="vip", ip=ip, services=[], roles=[])
            g.nodes[vid]["services"].append(sid)
            g.nodes[vid]["roles"].append("LoadBalancer" if ip in s.lb_ips else "externalIP")
            g.add_edge(vid, sid, key="frontend", kind="frontend",
                       source="loadBalancer" if ip in s.lb_ips else "externalIPs")
            for n in data.nodes:
                if any(r.dst == f"{ip}/32" and r.dev == "lo" for r in n.routes):
                    g.add_edge(node_id(n.name), vid, key="announce", kind="announce")
                    underlay_owners.setdefault(ip, node_id(n.name))
    g.graph["underlay_owners"] = underlay_owners
    g.graph["service_ips"] = _service_ips(g)
    return g


def _service_ips(g: nx.MultiDiGraph) -> dict[str, str]:
    """Every virtual IP kube-proxy DNATs (ClusterIPs, external IPs, LoadBalancer IPs) -> service vertex."""
    out: dict[str, str] = {}
    for v, a in g.nodes(data=True):
        if a.get("kind") != "service":
            continue
        for ip in [a.get("cluster_ip"), *a["external_ips"], *a["lb_ips"]]:
            if ip and ip != "None":
                out.setdefault(ip, v)
    return out


# --- queries -------------------------------------------------------------------------------------

def vertices(g: nx.MultiDiGraph, kind: str) -> list[str]:
    return sorted(v for v, a in g.nodes(data=True) if a.get("kind") == kind)


def edges(g: nx.MultiDiGraph, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(u, v, a) for u, v, a in g.edges(data=True) if a.get("kind") == kind]


def without_namespaces(g: nx.MultiDiGraph, namespaces: Iterable[str], *, keep: Iterable[str] = ()) -> nx.MultiDiGraph:
    """A copy without the pods (and their host veths) and Services of `namespaces`, e.g. kube-system for a
    less busy picture, except the vertices in `keep`; VIPs left with no Service go too."""
    drop, kept = set(namespaces), set(keep)
    h = g.copy()
    gone = [v for v, a in g.nodes(data=True) if a.get("kind") in ("pod", "service") and a.get("namespace") in drop
            and v not in kept]
    gone += [v for v, a in g.nodes(data=True) if a.get("kind") == "veth" and a.get("pod") in gone]
    h.remove_nodes_from(gone)
    h.remove_nodes_from([v for v, a in list(h.nodes(data=True)) if a.get("kind") == "vip"
                         and not any(e.get("kind") == "frontend" for _, _, e in h.out_edges(v, data=True))])
    return h


def pod_by_ip(g: nx.MultiDiGraph, ip: str) -> str | None:
    """The pod vertex with this IP, or None."""
    return next((v for v, a in g.nodes(data=True) if a.get("kind") == "pod" and a.get("ip") == ip), None)


def service_by_ip(g: nx.MultiDiGraph, ip: str) -> str | None:
    return g.graph.get("service_ips", {}).get(ip)


def service_by_node_port(g: nx.MultiDiGraph, port: int, protocol: str = "TCP") -> str | None:
    """The Service vertex owning a NodePort, or None."""
    for v, a in g.nodes(data=True):
        if a.get("kind") == "service" and any(p.node_port == port and p.protocol == protocol for p in a["ports"]):
            return v
    return None


def node_of_ip(g: nx.MultiDiGraph, ip: str) -> str | None:
    """The node (name) an IP lives on: a node's own address (eth0, cni0, tunnel), a pod's IP, a LoadBalancer
    IP it announces, or else the node whose pod CIDR / routed block holds the IP."""
    for _, a in g.nodes(data=True):
        if a.get("kind") == "node" and (a["ip"] == ip or any(_ip(c) == ip for _, c in a["addrs"])):
            return a["name"]
    pod = pod_by_ip(g, ip)
    if pod is not None:
        return g.nodes[pod]["node"]
    owner = g.graph.get("underlay_owners", {}).get(ip)
    if owner and g.nodes[owner].get("kind") == "node":
        return g.nodes[owner]["name"]
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    # calico's IPAM blocks do not follow the podCIDR: a node's own blocks are its blackhole routes.
    for _, a in g.nodes(data=True):
        if a.get("kind") == "node":
            for r in a["routes"]:
                if r.kind == "blackhole" and _contains(r.dst, addr):
                    return a["name"]
    for _, a in g.nodes(data=True):
        if a.get("kind") == "node" and a.get("pod_cidr") and _contains(a["pod_cidr"], addr):
            return a["name"]
    return None


def _contains(cidr: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return covers(cidr, addr)


def resolve(g: nx.MultiDiGraph, ref: str) -> str:
    """A vertex from what a user or the tracer has: a vertex id, `ns/pod`, `node/N`, `host/H`, `svc/NS/N`, or
    an IP (pod, node, host, service VIP)."""
    if ref in g:
        return ref
    if ref.count("/") == 1 and pod_id(*ref.split("/", 1)) in g:
        return pod_id(*ref.split("/", 1))
    for v, a in g.nodes(data=True):
        if a.get("ip") == ref and a.get("kind") in ("pod", "node", "host", "vip"):
            return v
    if ref in g.graph.get("service_ips", {}):
        return g.graph["service_ips"][ref]
    name = node_of_ip(g, ref) if _is_ip(ref) else None
    if name and any(_ip(c) == ref for _, c in g.nodes[node_id(name)]["addrs"]):
        return node_id(name)
    raise PathError(f"{ref}: no such pod, node, host, service or address in the topology")


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def _owns(a: dict[str, Any], ip: str) -> bool:
    return any(_ip(c) == ip for _, c in a.get("addrs", []))


def _segment(g: nx.MultiDiGraph, cur: str, dev_vertex: str, ifname: str, nexthop: str) -> list[str]:
    """The vertices a packet crosses from L3 vertex `cur` out of `ifname` to the L3 owner of `nexthop`."""
    a = g.nodes[dev_vertex]
    kind = a.get("kind")
    if dev_vertex == FABRIC:
        owner = g.graph["underlay_owners"].get(nexthop)
        if owner is None:
            raise PathError(f"{cur}: nobody on the underlay answers for {nexthop}")
        if cur == FABRIC:  # the fabric routes onto its own bridge
            return [owner]
        return [FABRIC] if owner == FABRIC else [FABRIC, owner]
    if kind in ("host", "node", "pod"):  # a point-to-point port (fabric -> routed host)
        return [dev_vertex]
    if kind == "bridge":
        owner_path = a["owners"].get(nexthop)
        if owner_path is None:
            raise PathError(f"{cur}: no port of bridge {a['ifname']} answers for {nexthop}")
        return [dev_vertex, *owner_path]
    if kind == "veth":
        if g.nodes[cur].get("kind") == "pod":  # leaving the pod towards the node
            if a.get("master"):
                bid = dev_id(a["node"], a["master"])
                owner_path = g.nodes[bid]["owners"].get(nexthop)
                if owner_path is None:
                    raise PathError(f"{cur}: no port of bridge {a['master']} answers for {nexthop}")
                return [dev_vertex, bid, *[v for v in owner_path if v != dev_vertex]]
            return [dev_vertex, node_id(a["node"])]  # routed veth: the node answers (proxy ARP)
        if a.get("pod") is None:
            raise PathError(f"{cur}: veth {a['ifname']} leads to no known pod")
        return [dev_vertex, a["pod"]]
    if kind == "tunnel":
        _, entry = _vxlan_peer(g, a, nexthop)
        outer = entry.dst if entry else None
        if outer is None:
            raise PathError(f"{cur}: {a['ifname']} has no neighbour/FDB entry for {nexthop}")
        for _, rt, e in g.out_edges(dev_vertex, data=True):
            if e.get("kind") == "vxlan-tunnel" and e.get("dst_ip") == outer:
                return [dev_vertex, rt, node_id(g.nodes[rt]["node"])]
        raise PathError(f"{cur}: VXLAN peer {outer} is not a known node")
    raise PathError(f"{cur}: cannot cross {dev_vertex}")


@dataclass(frozen=True)
class Hop:
    """One vertex on a predicted path and what happens there.

    `action`: "send" (the source), "route" (an L3 vertex that looked up `route` and sends out of `dev`
    towards `nexthop`), "dnat" (a Service: `translated` is the endpoint IP picked), "frontend" (a LoadBalancer
    / external IP), "encap" (a tunnel device wrapping the packet: `outer` = src/dst IP, VNI, UDP port),
    "decap" (the remote tunnel device), "cross" (a veth or bridge the frame passes), "deliver" (the
    destination owns the address).
    """

    vertex: str
    action: str
    route: Route | None = None
    dev: str | None = None
    nexthop: str | None = None
    translated: str | None = None
    outer: dict[str, Any] | None = None


def forward_hops(g: nx.MultiDiGraph, src: str, dst_ip: str, *, endpoint: str | None = None,
                 service: str | None = None, max_hops: int = 64) -> list[Hop]:
    """The hops of a packet from `src` to `dst_ip`, by the routing facts: at each L3 vertex a longest-prefix
    match, then the device and the next hop's owner on that segment (bridge port, underlay neighbour, or
    the VXLAN neighbour + FDB entry giving the outer destination). A Service VIP is translated at the first
    node (kube-proxy's DNAT in PREROUTING/OUTPUT) to `endpoint` (a pod vertex or `ns/name`; default: the
    first ready endpoint). `service` (a service vertex) makes a packet to a node's own address a NodePort
    connection of that Service, translated at that node (see `service_by_node_port`). Raises PathError
    (with the vertices so far) at a dead end."""
    hops = [Hop(src, "send")]

    def partial() -> list[str]:
        return [h.vertex for h in hops]

    cur = src
    for _ in range(max_hops):
        a = g.nodes[cur]
        nodeport = service is not None and _owns(a, dst_ip) and not dst_ip.startswith("127.")
        if a.get("kind") == "node" and (dst_ip in g.graph.get("service_ips", {}) or nodeport):
            sid = g.graph["service_ips"].get(dst_ip) or service or ""
            service = None  # translated once
            ep = _pick_endpoint(g, sid, endpoint)
            if vip_id(dst_ip) in g:
                hops.append(Hop(vip_id(dst_ip), "frontend"))
            hops.append(Hop(sid, "dnat", translated=g.nodes[ep]["ip"]))
            dst_ip = g.nodes[ep]["ip"]
        if _owns(a, dst_ip):
            if hops[-1].vertex == cur:
                hops[-1] = replace(hops[-1], action="deliver")
            else:  # after a DNAT to an address of this very vertex (a host-network endpoint)
                hops.append(Hop(cur, "deliver"))
            return hops
        step = next_hop(a.get("routes", []), dst_ip)
        r, dev, nexthop = step.route, step.dev, step.nexthop
        if r is None:
            raise PathError(f"{cur}: no route to {dst_ip}", partial())
        if not step.forwards:
            raise PathError(f"{cur}: {r.kind} route {r.dst} for {dst_ip}", partial())
        if dev == "lo":  # a local route (a LoadBalancer IP the node announces): delivered here
            hops.append(Hop(cur, "deliver", route=r, dev=dev))
            return hops
        nxt = a.get("ifaces", {}).get(dev or "")
        if nxt is None:
            raise PathError(f"{cur}: route {r.dst} uses {dev}, which the topology does not know", partial())
        routed = Hop(cur, "route", route=r, dev=dev, nexthop=nexthop)
        if hops[-1].vertex == cur:  # the DNAT hop sits between the arrival and the routing decision
            hops[-1] = replace(routed, action="send" if hops[-1].action == "send" else "route")
        else:
            hops.append(routed)
        crossed = _segment(g, cur, nxt, dev or "", nexthop)
        for i, v in enumerate(crossed[:-1]):
            hops.append(_crossing(g, v, nexthop, first=i == 0))
        last = crossed[-1]
        if last == cur or sum(1 for h in hops if h.vertex == last) > 1:
            raise PathError(f"routing loop at {last} towards {dst_ip}", partial() + [last])
        cur = last
        hops.append(Hop(cur, "arrive"))
    raise PathError(f"more than {max_hops} hops towards {dst_ip}", partial())


def _crossing(g: nx.MultiDiGraph, v: str, nexthop: str, *, first: bool) -> Hop:
    a = g.nodes[v]
    if a.get("kind") != "tunnel":
        return Hop(v, "cross")
    if first:  # the sending VTEP: neighbour -> MAC, FDB -> outer destination
        neigh, entry = _vxlan_peer(g, a, nexthop)
        mac = neigh.mac if neigh else None
        outer = {"src": a["local"], "dst": entry.dst if entry else None, "vni": a["vni"], "port": a["port"],
                 "vtepMAC": mac}
        return Hop(v, "encap", outer=outer)
    return Hop(v, "decap")


def forward(g: nx.MultiDiGraph, src: str, dst_ip: str, *, endpoint: str | None = None,
            service: str | None = None, max_hops: int = 64) -> list[str]:
    """The vertices of `forward_hops`, each once: a node that translates a Service VIP appears before the
    VIP and Service vertices, not again after them when it routes the translated packet on."""
    out: list[str] = []
    for h in forward_hops(g, src, dst_ip, endpoint=endpoint, service=service, max_hops=max_hops):
        if out and h.vertex == out[-1]:
            continue
        if h.action in ("route", "deliver") and out and g.nodes[out[-1]].get("kind") == "service" \
                and h.vertex in out[-3:]:
            continue
        out.append(h.vertex)
    return out


def _vxlan_peer(g: nx.MultiDiGraph, tunnel: dict[str, Any], nexthop: str) -> tuple[Neigh | None, Fdb | None]:
    """A tunnel vertex's neighbour and FDB entry for `nexthop`, from its node's kernel facts, resolved by the
    walkers' shared `netsim.kernel.routes.vxlan_peer`."""
    node = g.nodes[node_id(tunnel["node"])]
    return vxlan_peer(node.get("neighs", []), node.get("fdbs", []), tunnel["ifname"], nexthop)


def _pick_endpoint(g: nx.MultiDiGraph, sid: str, endpoint: str | None) -> str:
    eps = sorted((v, e.get("ready", True)) for _, v, e in g.out_edges(sid, data=True) if e.get("kind") == "endpoint")
    if endpoint is not None:
        want = endpoint if endpoint in g else pod_id(*endpoint.split("/", 1))
        if want not in [v for v, _ in eps]:
            raise PathError(f"{endpoint} is not an endpoint of {sid}")
        return want
    ready = [v for v, ok in eps if ok] or [v for v, _ in eps]
    if not ready:
        raise PathError(f"{sid} has no endpoints")
    return ready[0]


def _ip_of(g: nx.MultiDiGraph, v: str) -> str | None:
    a = g.nodes[v]
    if a.get("kind") == "service":
        return a.get("cluster_ip") if a.get("cluster_ip") not in (None, "None") else None
    return a.get("ip")


def path_between(g: nx.MultiDiGraph, a: str, b: str, *, routed: bool = True, endpoint: str | None = None,
                 kinds: Sequence[str] = DATA_PLANE_KINDS) -> list[str]:
    """The path from `a` to `b` (anything `resolve` accepts).

    With `routed` (the default) and an addressable source and destination, the path follows the routing
    facts (`forward`), so pod-to-pod across nodes goes pod -> veth [-> bridge] -> node -> tunnel -> tunnel ->
    node [-> bridge] -> veth -> pod on an overlay and node -> fabric -> node on host-gw. Otherwise, or when
    the facts are incomplete, it is networkx's shortest path over edges whose kind is in `kinds`."""
    src, dst = resolve(g, a), resolve(g, b)
    dst_ip = _ip_of(g, dst)
    if routed and dst_ip and g.nodes[src].get("kind") in L3_KINDS:
        return forward(g, src, dst_ip, endpoint=endpoint)
    view = nx.subgraph_view(g, filter_edge=lambda u, v, k: g.edges[u, v, k].get("kind") in kinds)
    try:
        return nx.shortest_path(view, src, dst)
    except nx.NetworkXNoPath:
        raise PathError(f"no path from {src} to {dst} over {', '.join(kinds)} edges") from None


def describe_path(g: nx.MultiDiGraph, path: Sequence[str]) -> list[str]:
    """One line per step: `from -[kind]-> to` with the interesting attributes of the edge."""
    out = []
    for u, v in zip(path, path[1:]):
        data = g.get_edge_data(u, v) or {}
        kinds = sorted(data) if data else ["dnat" if g.nodes[v].get("kind") == "service" else "?"]
        extra = ""
        if "vxlan-tunnel" in data:
            e = data["vxlan-tunnel"]
            extra = f" (VNI {e['vni']}, {e['src_ip']} -> {e['dst_ip']}:{e['port']})"
        out.append(f"{u} -[{','.join(kinds)}]-> {v}{extra}")
    return out


# --- the collector -------------------------------------------------------------------------------

def _host_veth_candidates(namespace: str, name: str, container_id: str) -> list[str]:
    """Host-side veth names the in-tree plugins derive from a pod (flannel/bridge: `veth`+hash of the
    attachment; calico/canal: `cali`+hash of ns.pod)."""
    out = []
    try:
        from cni_plugins.flannel import host_veth_name
        out.append(host_veth_name(container_id, "eth0"))
    except Exception:  # noqa: BLE001 - a plugin that cannot be imported simply offers no candidate
        pass
    try:
        from cni_plugins.routed_veth import calico_veth_name
        out.append(calico_veth_name(namespace, name, container_id))
    except Exception:  # noqa: BLE001
        pass
    return out


def _sandboxes(cluster: str, node: str) -> dict[str, dict[str, Any]]:
    from netsim import naming
    out = {}
    for f in (Path(naming.node_state_dir(cluster, node)) / "sandboxes").glob("*.json"):
        try:
            sb = json.loads(f.read_text())
            out[f"{sb['namespace']}/{sb['name']}"] = sb
        except (OSError, ValueError, KeyError):
            continue
    return out


def collect(cluster: Any, *, pod_routes: bool = True) -> TopologyData:
    """Read a live cluster (a netsim.api.Cluster) into TopologyData: state file, kernel and store."""
    from netsim import naming
    from netsim.controlplane import objects as o
    k = cluster.kernel
    st = cluster.state
    spec = cluster.spec
    fabric_ns = st.fabric or naming.fabric_ns(st.name)
    fabric = FabricData(netns=fabric_ns, bridge=naming.UNDERLAY_BRIDGE, links=k.links(fabric_ns),
                        addrs=k.addrs(fabric_ns), routes=k.routes(fabric_ns))
    data = TopologyData(cluster=st.name, plugin=spec.network.plugin, backend=spec.network.backend, fabric=fabric)
    from netsim.trace.view import read_node
    node_links: dict[str, set[str]] = {}
    for rec in st.nodes:
        # the node reader trace's cluster view uses, without netfilter state and with every neighbour entry
        nv = read_node(k, rec["name"], rec["ip"], rec["netns"], filters=False, all_neighs=True)
        node_links[rec["name"]] = set(nv.links)
        data.nodes.append(NodeData(rec["name"], rec["ip"], rec.get("podCIDR", ""), nv.netns, list(nv.links.values()),
                                   nv.addrs, nv.routes, nv.neighs, nv.fdbs))
    host_ports = {link.peer_netns_id: link.name for link in fabric.links if link.name.startswith("h")}
    for i, rec in enumerate(st.hosts):
        ns = rec["netns"]
        routes = k.routes(ns) if k.netns_exists(ns) else []
        port = naming.fabric_port_for_host(i)
        data.hosts.append(HostData(rec["name"], rec["ip"], ns, rec.get("gateway", ""), routes,
                                   port if port in host_ports.values() else None))
    sandboxes = {key: sb for rec in st.nodes for key, sb in _sandboxes(st.name, rec["name"]).items()}
    for p in cluster.store.list("Pod", None):
        ip = (p.get("status") or {}).get("podIP")
        node = o.node_name(p)
        if not ip or not node or o.is_terminal(p):
            continue
        ns_name, name = o.namespace(p) or "default", o.name(p)
        netns = naming.pod_ns(st.name, ns_name, name)
        sb = sandboxes.get(f"{ns_name}/{name}", {})
        host_if = next((c for c in _host_veth_candidates(ns_name, name, sb.get("container_id", ""))
                        if c in node_links.get(node, set())), None) if sb else None
        routes = []
        if pod_routes and k.netns_exists(netns):
            routes = k.routes(netns)
        data.pods.append(PodData(ns_name, name, ip, node, netns, host_if, "eth0", routes, o.labels(p),
                                 (p.get("status") or {}).get("phase", "")))
    slices: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for es in cluster.store.list("EndpointSlice", None):
        svc = ((es.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
        if svc:
            slices.setdefault((o.namespace(es) or "default", svc), []).append(es)
    for s in cluster.store.list("Service", None):
        spec_ = s.get("spec") or {}
        ns_name, name = o.namespace(s) or "default", o.name(s)
        eps = []
        for es in slices.get((ns_name, name), []):
            for e in es.get("endpoints") or []:
                ref = e.get("targetRef") or {}
                pod = f"{ref.get('namespace', ns_name)}/{ref['name']}" if ref.get("kind") == "Pod" else None
                ready = (e.get("conditions") or {}).get("ready", True) is not False
                for addr in e.get("addresses") or []:
                    eps.append(EndpointData(addr, pod, e.get("nodeName"), ready))
        ingress = ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        data.services.append(ServiceData(
            ns_name, name, spec_.get("type", "ClusterIP"), spec_.get("clusterIP"),
            [ServicePortData(int(p["port"]), p.get("protocol", "TCP"), p.get("name", ""), p.get("targetPort"),
                             p.get("nodePort")) for p in spec_.get("ports") or []],
            list(spec_.get("externalIPs") or []), [i["ip"] for i in ingress if i.get("ip")], eps))
    return data


def topology_of(cluster: Any) -> nx.MultiDiGraph:
    """collect + build_graph for a netsim.api.Cluster."""
    return build_graph(collect(cluster))
