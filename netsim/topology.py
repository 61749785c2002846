"""The cluster's topology as a networkx graph: what is wired to what, and the routing facts on each hop.

Two halves, so the graph logic is testable without root:

* `collect(cluster) -> ClusterView` reads a live cluster into the one cluster view (`netsim.trace.view`)
  at once (`netsim.trace.observe.facts.read_cluster`): the state file (nodes, hosts, fabric), the kernel
  (links, addresses, routes, neighbours and VXLAN FDB entries of every node through the one node reader,
  `facts.read_node`; the fabric, hosts and pods) and the store (pods, Services, EndpointSlices).
* `build_graph(view) -> nx.MultiDiGraph` is pure: the view in, the graph out (an output contract, kept byte
  for byte by `tests/unit/topology/golden/`). The graph keeps the view it was built from, and its paths are
  walked over that view by the one packet walker (`netsim.trace.simulate.walker`), the walker trace uses.

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
((ifname, cidr)) and `ifaces` (ifname -> the vertex that interface leads to), for readers of the graph;
`forward_hops` asks the walker instead (longest-prefix match, then the device, then the L2 owner of the next
hop on that segment: bridge ports, the underlay, or the VXLAN neighbour + FDB entry that gives the outer
destination, as flannel `pkg/backend/vxlan/vxlan_network.go` and calico felix `vxlan_mgr.go` program them)
and names each device it crosses as a vertex. Tunnel vertices carry `neighs` (VTEP IP -> MAC) and `fdb`
(MAC -> remote node IP) of their device; node vertices the raw `neighs` and `fdbs` lists.

Queries: `pod_by_ip`, `service_by_ip`, `service_by_node_port`, `node_of_ip`, `resolve` (a selector or IP
to a vertex), `path_between(g, a, b)` (the vertex list), `forward_hops` (per hop: the route taken, the out
device and next hop, the DNAT choice, the VXLAN outer header), `describe_path`, `without_namespaces`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import networkx as nx

from netsim.kernel.api import Route
from netsim.kernel.routes import covers, vxlan_peer
from netsim.kernel.routes import lookup_route as lookup_route  # the shared lookup, re-exported for callers
from netsim.trace.simulate import walker as W
from netsim.trace.view import (  # noqa: F401 - the view's records, importable from here for the graph's users
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

EDGE_KINDS = ("veth", "bridge-port", "route", "underlay", "vxlan-tunnel", "endpoint", "frontend", "announce")
DATA_PLANE_KINDS = ("veth", "bridge-port", "route", "underlay", "vxlan-tunnel")
L3_KINDS = ("pod", "node", "host", "fabric")
FABRIC = "fabric"


class PathError(Exception):
    """No path: the routing facts lead nowhere (no route, a blackhole, an unknown next hop, a loop)."""

    def __init__(self, message: str, partial: Sequence[str] = ()):
        super().__init__(message)
        self.partial = list(partial)


# --- the data: the one cluster view ----------------------------------------------------------------
# The graph is built from `netsim.trace.view.ClusterView` (read eagerly by `collect`, or made by hand with
# `make_view`); these names stay importable from here for the graph's users.
TopologyData = ClusterView


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


def build_graph(data: ClusterView) -> nx.MultiDiGraph:
    """The topology graph of the cluster view `data` (see the module docstring for vertices and edges);
    `forward_hops` walks the same view with the shared packet walker."""
    g = nx.MultiDiGraph()
    # (not as constructor keywords: networkx reserves `backend` for its dispatch machinery)
    g.graph.update(cluster=data.name, plugin=data.plugin, backend=data.backend)
    g.netsim_view = data  # the facts the paths are walked over (not a graph attribute: outputs stay as they were)
    nodes = list(data.nodes.values())
    node_by_ip = {n.ip: n.name for n in nodes}
    underlay_owners: dict[str, str] = {}  # IP on the underlay segment -> L3 vertex answering for it

    def link2(a: str, b: str, kind: str, **attrs: Any) -> None:
        g.add_edge(a, b, key=kind, kind=kind, **attrs)
        g.add_edge(b, a, key=kind, kind=kind, **attrs)

    # The fabric: underlay bridge + router for external hosts' subnets.
    fab = data.fabric_facts
    g.add_node(FABRIC, kind="fabric", label="underlay", netns=fab.netns, bridge=fab.bridge, addrs=list(fab.addrs),
               routes=list(fab.routes), ifaces={fab.bridge: FABRIC, "lo": FABRIC})
    for _, cidr in fab.addrs:
        if not cidr.startswith("127."):
            underlay_owners[_ip(cidr)] = FABRIC

    # Nodes and their devices.
    for n in nodes:
        nid = node_id(n.name)
        ifaces: dict[str, str] = {"eth0": FABRIC, "lo": nid}
        for link in n.links.values():
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
                   ifaces=ifaces, **({"host": n.machine} if n.machine else {}))
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
        host_if = data.host_veth_of(p)
        vid = dev_id(p.node, host_if) if host_if else None
        if vid is not None and vid not in g:
            vid = None  # the node has no such link (gone, or not collected)
        g.add_node(pid, kind="pod", namespace=p.namespace, name=p.name, key=p.key, ip=p.ip, node=p.node,
                   netns=p.netns, host_veth=host_if if vid else None, labels=dict(p.labels), phase=p.phase,
                   addrs=[(p.ifname, f"{p.ip}/32")] if p.ip else [], routes=list(p.routes or ()),
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
    for n in nodes:
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
    for h in data.host_views.values():
        hid = host_id(h.name)
        g.add_node(hid, kind="host", name=h.name, ip=h.ip, netns=h.netns, gateway=h.gateway,
                   addrs=[("eth0", f"{h.ip}/32")], routes=list(h.routes or ()), ifaces={"eth0": FABRIC, "lo": hid})
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
            for n in nodes:
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
    h.netsim_view = getattr(g, "netsim_view", None)
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
    """The hops of a packet from `src` to `dst_ip`, walked by the shared packet walker
    (`netsim.trace.simulate.walker`) over the cluster view the graph was built from: at each L3 vertex the
    walker's forwarding decision (longest-prefix match, the device, the next hop's owner on that segment:
    bridge port, underlay neighbour, or the VXLAN neighbour + FDB entry giving the outer destination), each
    device it crosses named as this graph's vertex. A Service VIP is translated at the first node
    (kube-proxy's DNAT in PREROUTING/OUTPUT) to `endpoint` (a pod vertex or `ns/name`; default: the first
    ready endpoint). `service` (a service vertex) makes a packet to a node's own address a NodePort
    connection of that Service, translated at that node (see `service_by_node_port`). Raises PathError
    (with the vertices so far) at a dead end."""
    view = _view(g)
    hops = [Hop(src, "send")]
    pending = {"service": service}

    def partial() -> list[str]:
        return [h.vertex for h in hops]

    def arrive(place: W.Place, dst: str) -> str:
        """kube-proxy's DNAT where the packet enters a node (the graph's Services: no netfilter here)."""
        cur = _vertex(place)
        a = g.nodes[cur]
        nodeport = pending["service"] is not None and _owns(a, dst) and not dst.startswith("127.")
        if a.get("kind") != "node" or not (dst in g.graph.get("service_ips", {}) or nodeport):
            return dst
        sid = g.graph["service_ips"].get(dst) or pending["service"] or ""
        pending["service"] = None  # translated once
        ep = _pick_endpoint(g, sid, endpoint)
        if vip_id(dst) in g:
            hops.append(Hop(vip_id(dst), "frontend"))
        hops.append(Hop(sid, "dnat", translated=g.nodes[ep]["ip"]))
        return g.nodes[ep]["ip"]

    for st in W.walk(view, _place(g, src), dst_ip, arrive=arrive, max_steps=max_hops):
        cur = _vertex(st.at)
        if st.action == W.DROP:
            if st.why == W.LOOP:
                raise PathError(f"routing loop at {cur} towards {st.dst}", partial())
            raise PathError(f"{cur}: {_why(st)}", partial())
        if st.action == W.DELIVER:
            if st.route is not None:  # a local route (a LoadBalancer IP the node announces): delivered here
                hops.append(Hop(cur, "deliver", route=st.route, dev=st.dev))
            elif hops[-1].vertex == cur:
                hops[-1] = replace(hops[-1], action="deliver")
            else:  # after a DNAT to an address of this very vertex (a host-network endpoint)
                hops.append(Hop(cur, "deliver"))
            return hops
        routed = Hop(cur, "route", route=st.route, dev=st.dev, nexthop=st.nexthop)
        if hops[-1].vertex == cur:  # the DNAT hop sits between the arrival and the routing decision
            hops[-1] = replace(routed, action="send" if hops[-1].action == "send" else "route")
        else:
            hops.append(routed)
        if st.gap:
            raise PathError(f"{cur}: {_gap(st)}", partial())
        for w in st.wires:
            v = FABRIC if w.role == "underlay" else dev_id(w.node, w.ifname)
            if v not in g:
                raise PathError(f"{cur}: cannot cross {v}", partial())
            hops.append(Hop(v, "encap", outer=dict(st.outer or {})) if w.role == "encap"
                        else Hop(v, "decap") if w.role == "decap" else Hop(v, "cross"))
        nxt = _vertex(st.to) if st.to is not None else ""
        if nxt not in g:
            raise PathError(f"{cur}: {nxt} is not in the topology", partial())
        hops.append(Hop(nxt, "arrive"))
    raise PathError(f"more than {max_hops} hops towards {dst_ip}", partial())


def _view(g: nx.MultiDiGraph) -> ClusterView:
    view = getattr(g, "netsim_view", None)
    if view is None:
        raise PathError("this graph carries no cluster view to walk (build it with build_graph)")
    return view


def _place(g: nx.MultiDiGraph, v: str) -> W.Place:
    a = g.nodes[v]
    kind = a.get("kind")
    if kind == "pod":
        return W.Place(W.POD, a["key"])
    if kind in ("node", "host"):
        return W.Place(kind, a["name"])
    if kind == "fabric":
        return W.Place(W.FABRIC)
    raise PathError(f"{v}: a {kind} sends no packets")


def _vertex(p: W.Place) -> str:
    if p.kind == W.POD:
        return pod_id(*p.name.split("/", 1))
    if p.kind == W.NODE:
        return node_id(p.name)
    if p.kind == W.HOST:
        return host_id(p.name)
    return FABRIC


def _why(st: W.Step) -> str:
    """A dead end as the topology has always named it."""
    if st.why == W.UNKNOWN_DEV:
        return f"route {st.route.dst if st.route else '?'} uses {st.dev}, which the topology does not know"
    if st.why in (W.NO_NEIGH, W.NO_FDB):
        return f"{st.dev} has no neighbour/FDB entry for {st.nexthop}"
    if st.why == W.VTEP_UNKNOWN:
        return f"VXLAN peer {(st.outer or {}).get('dst')} is not a known node"
    return st.reason


def _gap(st: W.Step) -> str:
    if st.at.kind == W.POD:
        return f"route {st.route.dst if st.route else 'default'} uses {st.dev}, which the topology does not know"
    return f"no port of bridge {st.dev} answers for {st.nexthop}"


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

def collect(cluster: Any, *, pod_routes: bool = True) -> ClusterView:
    """Read a live cluster (a netsim.api.Cluster) into the cluster view, every node at once
    (`netsim.trace.observe.facts.read_cluster`)."""
    from netsim.trace.observe.facts import read_cluster
    return read_cluster(cluster, pod_routes=pod_routes)


def topology_of(cluster: Any) -> nx.MultiDiGraph:
    """collect + build_graph for a netsim.api.Cluster."""
    return build_graph(collect(cluster))
