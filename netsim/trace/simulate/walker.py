"""The one packet walker: where a namespace sends a packet, decided from the cluster view's kernel facts.

`step(view, at, dst)` is one namespace's forwarding decision for a packet to `dst`, as the kernel makes it
for the first packet of a flow after netfilter's PREROUTING/OUTPUT (so after any DNAT): delivered locally,
dropped (no route, a blackhole/unreachable/prohibit route, an unresolvable VXLAN next hop, nobody on the
segment), or sent on to the next L3 namespace with the devices the frame crosses on the way:

* a pod: out of its eth0 through its host veth (and the bridge it is enslaved to) to whoever answers for the
  next hop on that segment: the node (the bridge's address, or proxy ARP on a routed veth) or a pod on the
  same bridge; a pod whose own routes were not read goes to its node (every CNI here routes pods there);
* a node: the longest-prefix route (`netsim.kernel.routes.next_hop`), then by the out device: a VXLAN
  device resolves the next hop to the VTEP MAC (neighbour) and the remote node (FDB entry), as the kernel's
  vxlan driver does (`vxlan_xmit`, entries programmed by flannel `pkg/backend/vxlan/vxlan_network.go` and
  calico felix `vxlan_mgr.go`); the uplink goes to the next hop's owner on the underlay (another node for
  host-gw / calico direct routes, the fabric as gateway, a host on the node network); a bridge or routed veth
  to the local pod behind it; a route over `lo` delivers (an announced LoadBalancer IP);
* the fabric (`netsim/fabric.py`): its routes onto the underlay bridge or a host's point-to-point port; with
  its routes unread, the owner of the destination on the underlay (node and host addresses only);
* an external host: its routes (or, unread, the fabric).

`walk` strings steps together for callers that need no NAT of their own or do it in a hook (the topology
graph's Service translation, the reply's conntrack undo). Users: trace's simulation (`walk.Simulator`, which
adds each node's netfilter and the NetworkPolicy model around `step` and forks on NAT choices), trace's
reply walk (`reply.walk_reply`), and `netsim.topology.forward_hops` (behind `path_between` and
`netsim draw --path`), which names each crossed device as a vertex of its graph. Nothing else decides
where a packet goes (`tests/unit/test_walker.py` checks that no second walker or route lookup exists).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from netsim import naming
from netsim.kernel.api import Route
from netsim.kernel.routes import next_hop, vxlan_peer
from netsim.trace.view import ClusterView

POD, NODE, HOST, FABRIC = "pod", "node", "host", "fabric"
DELIVER, FORWARD, DROP = "deliver", "forward", "drop"
UPLINK = naming.UPLINK

# why a step drops (consumers phrase it; `Step.reason` is a plain default)
NO_ROUTE = "no-route"  # no route matches
NOT_FORWARDING = "not-forwarding"  # a blackhole / unreachable / prohibit route
UNKNOWN_DEV = "unknown-dev"  # the route's device is not a link of the namespace (or not known to the view)
NO_NEIGH = "no-neigh"  # VXLAN: no neighbour entry for the next hop
NO_FDB = "no-fdb"  # VXLAN: no FDB entry for the VTEP's MAC
VTEP_UNKNOWN = "vtep-unknown"  # VXLAN: the outer destination is no node
NO_OWNER = "no-owner"  # nobody on the segment answers for the next hop
NO_POD = "no-pod"  # a pod route with no pod behind it
LOOP = "loop"


@dataclass(frozen=True)
class Place:
    """An L3 namespace: a pod (`ns/name`), a node, an external host, or the fabric (name "")."""

    kind: str
    name: str = ""

    def __str__(self) -> str:
        return {POD: "pod/", NODE: "node/", HOST: "host/"}.get(self.kind, "") + (self.name or self.kind)


@dataclass(frozen=True)
class Wire:
    """A device a frame crosses between two L3 namespaces: `dev` (a node's veth, bridge or VXLAN device,
    role veth | bridge | encap | decap) or the underlay segment (role underlay, no node)."""

    role: str
    node: str = ""
    ifname: str = ""


@dataclass(frozen=True)
class Step:
    """One namespace's decision for a packet to `dst`. FORWARD: `to` receives it after `wires`; `outer` is
    the VXLAN header (src, dst, vni, port, vtepMAC) when a tunnel wraps it; `gap` names a device the view
    could not name (a consumer drawing every device treats it as a dead end). DROP: `why` (above)."""

    at: Place
    dst: str
    action: str
    route: Route | None = None
    dev: str | None = None
    nexthop: str | None = None
    to: Place | None = None
    wires: tuple[Wire, ...] = ()
    outer: dict | None = None
    why: str = ""
    reason: str = ""
    gap: str = ""


def _drop(at: Place, dst: str, why: str, reason: str, **kw) -> Step:
    return Step(at, dst, DROP, why=why, reason=reason, **kw)


def owns(view: ClusterView, at: Place, ip: str) -> bool:
    """Is `ip` an address of the namespace `at` (loopback included for nodes)?"""
    if at.kind == NODE:
        return ip in view.node(at.name).local_ips or ip.startswith("127.")
    if at.kind == POD:
        pod = view.pod(at.name)
        return pod is not None and pod.ip == ip
    if at.kind == HOST:
        return view.hosts.get(at.name) == ip
    return any(c.split("/")[0] == ip for _, c in view.fabric_facts.addrs)


def step(view: ClusterView, at: Place, dst: str) -> Step:
    """The forwarding decision of namespace `at` for a packet to `dst` (see the module docstring)."""
    if owns(view, at, dst):
        return Step(at, dst, DELIVER)
    if at.kind == NODE:
        return _node_step(view, at, dst)
    if at.kind == POD:
        return _pod_step(view, at, dst)
    if at.kind == HOST:
        return _host_step(view, at, dst)
    return _fabric_step(view, at, dst)


def _routed(at: Place, dst: str, routes: list[Route]) -> tuple[Step | None, Route | None, str | None, str]:
    nh = next_hop(routes, dst)
    if nh.route is None:
        return _drop(at, dst, NO_ROUTE, f"no route to {dst}"), None, None, dst
    if not nh.forwards:
        r = nh.route
        return _drop(at, dst, NOT_FORWARDING, f"{r.kind} route {r.dst} for {dst}", route=r), r, nh.dev, nh.nexthop
    return None, nh.route, nh.dev, nh.nexthop


def _pod_step(view: ClusterView, at: Place, dst: str) -> Step:
    pod = view.pod(at.name)
    if pod is None:
        return _drop(at, dst, NO_OWNER, f"no pod {at.name}")
    hv = view.host_veth_of(pod)
    if pod.routes is None:  # not read: the pod's one route is to its node
        wires = (Wire("veth", pod.node, hv),) if hv else ()
        return Step(at, dst, FORWARD, dev=pod.ifname, nexthop=dst, to=Place(NODE, pod.node), wires=wires,
                    gap="" if hv else pod.ifname)
    dropped, r, dev, nexthop = _routed(at, dst, list(pod.routes))
    if dropped is not None:
        return dropped
    kw = dict(route=r, dev=dev, nexthop=nexthop)
    if dev != pod.ifname or hv is None:
        return _drop(at, dst, UNKNOWN_DEV, f"route {r.dst} uses {dev}, which the view does not know", **kw)
    veth = view.node(pod.node).links[hv]
    if not veth.master:  # a routed veth: the node answers every address (calico's proxy ARP)
        return Step(at, dst, FORWARD, to=Place(NODE, pod.node), wires=(Wire("veth", pod.node, hv),), **kw)
    to, tail = _bridge_owner(view, pod.node, veth.master, nexthop)
    if to is None:
        return _drop(at, dst, NO_OWNER, f"no port of bridge {veth.master} answers for {nexthop}", **kw)
    return Step(at, dst, FORWARD, to=to,
                wires=(Wire("veth", pod.node, hv), Wire("bridge", pod.node, veth.master), *tail), **kw)


def _bridge_owner(view: ClusterView, node: str, bridge: str, ip: str) -> tuple[Place | None, tuple[Wire, ...]]:
    """Who answers for `ip` on `bridge` of `node`, and the port it is reached through: the node itself (an
    address of the bridge) or a pod whose host veth is a port of it."""
    nv = view.node(node)
    if any(i == bridge and c.split("/")[0] == ip for i, c in nv.addrs):
        return Place(NODE, node), ()
    pod = view.pod_by_ip(ip, node)
    if pod is None:
        return None, ()
    hv = view.host_veth_of(pod)
    if hv is None or nv.links[hv].master != bridge:
        return None, ()
    return Place(POD, pod.key), (Wire("veth", node, hv),)


def _node_step(view: ClusterView, at: Place, dst: str) -> Step:
    nv = view.node(at.name)
    dropped, r, dev, nexthop = _routed(at, dst, nv.routes)
    if dropped is not None:
        return dropped
    kw = dict(route=r, dev=dev, nexthop=nexthop)
    if dev == "lo":  # a local route (a LoadBalancer IP the node announces): delivered here
        return Step(at, dst, DELIVER, **kw)
    if dev == UPLINK:
        owner = view.underlay_owner(nexthop, announced=view.on_underlay(nexthop))
        if owner is None:
            return _drop(at, dst, NO_OWNER, f"nobody on the underlay answers for {nexthop}", **kw)
        to = Place(*owner)
        return Step(at, dst, FORWARD, to=to, wires=() if to.kind == FABRIC else (Wire("underlay"),), **kw)
    link = nv.links.get(dev or "")
    if link is None:
        return _drop(at, dst, UNKNOWN_DEV, f"route {r.dst} uses {dev}, which the view does not know", **kw)
    if link.kind == "vxlan":
        return _vxlan_step(view, at, dst, link, r, nexthop)
    if link.kind == "bridge":
        to, tail = _bridge_owner(view, at.name, link.name, nexthop)
        if to is None:
            pod = view.pod_by_ip(nexthop, at.name)  # behind the bridge, its port not known to the view
            if pod is None:
                return _drop(at, dst, NO_OWNER, f"no port of bridge {dev} answers for {nexthop}", **kw)
            return Step(at, dst, FORWARD, to=Place(POD, pod.key), wires=(Wire("bridge", at.name, link.name),),
                        gap=f"port of {link.name}", **kw)
        return Step(at, dst, FORWARD, to=to, wires=(Wire("bridge", at.name, link.name), *tail), **kw)
    pod = view.pod_by_ip(nexthop, at.name)
    if pod is None or view.host_veth_of(pod) not in (None, link.name):
        pod = view.pod_behind(at.name, link.name)
    if pod is None:
        return _drop(at, dst, NO_POD, f"veth {dev} leads to no known pod", **kw)
    return Step(at, dst, FORWARD, to=Place(POD, pod.key), wires=(Wire("veth", at.name, link.name),), **kw)


def _vxlan_step(view: ClusterView, at: Place, dst: str, link, r: Route, via: str) -> Step:
    nv = view.node(at.name)
    kw = dict(route=r, dev=link.name, nexthop=via)
    neigh, fdb = vxlan_peer(nv.neighs, nv.fdbs, link.name, via)
    if neigh is None:
        return _drop(at, dst, NO_NEIGH, f"no neighbour entry for {via} on {link.name}", **kw)
    if fdb is None or not fdb.dst:
        return _drop(at, dst, NO_FDB, f"no FDB entry for {neigh.mac} on {link.name}", **kw)
    vx = link.vxlan or {}
    outer = {"src": vx.get("local") or nv.ip, "dst": fdb.dst, "vni": vx.get("vni"), "port": vx.get("port"),
             "vtepMAC": neigh.mac}
    remote = view.node_by_ip(fdb.dst)
    if remote is None:
        return _drop(at, dst, VTEP_UNKNOWN, f"VTEP {fdb.dst} is not a node", outer=outer, **kw)
    rdev = next((lk.name for lk in view.node(remote).links.values()
                 if lk.kind == "vxlan" and (lk.vxlan or {}).get("vni") == vx.get("vni")), link.name)
    return Step(at, dst, FORWARD, to=Place(NODE, remote), outer=outer,
                wires=(Wire("encap", at.name, link.name), Wire("decap", remote, rdev)), **kw)


def _host_step(view: ClusterView, at: Place, dst: str) -> Step:
    h = view.host_views.get(at.name)
    if h is None or not h.routes:  # not read: a host's one way out is the fabric
        return Step(at, dst, FORWARD, dev=UPLINK, nexthop=dst, to=Place(FABRIC))
    dropped, r, dev, nexthop = _routed(at, dst, h.routes)
    if dropped is not None:
        return dropped
    kw = dict(route=r, dev=dev, nexthop=nexthop)
    if dev != UPLINK:
        return _drop(at, dst, UNKNOWN_DEV, f"route {r.dst} uses {dev}, which the view does not know", **kw)
    owner = view.underlay_owner(nexthop, announced=view.on_underlay(nexthop))
    if owner is None:
        return _drop(at, dst, NO_OWNER, f"nobody on the underlay answers for {nexthop}", **kw)
    to = Place(*owner)
    return Step(at, dst, FORWARD, to=to, wires=() if to.kind == FABRIC else (Wire("underlay"),), **kw)


def _fabric_step(view: ClusterView, at: Place, dst: str) -> Step:
    fab = view.fabric_facts
    if not fab.known:  # the underlay's router: node and host addresses, announced IPs
        owner = view.underlay_owner(dst)
        if owner is None or owner[0] == FABRIC:
            return _drop(at, dst, NO_ROUTE, f"no route to {dst}")
        return Step(at, dst, FORWARD, dev=fab.bridge, nexthop=dst, to=Place(*owner))
    dropped, r, dev, nexthop = _routed(at, dst, fab.routes)
    if dropped is not None:
        return dropped
    kw = dict(route=r, dev=dev, nexthop=nexthop)
    if dev == fab.bridge:
        owner = view.underlay_owner(nexthop, announced=view.on_underlay(nexthop))
        if owner is None:
            return _drop(at, dst, NO_OWNER, f"nobody on the underlay answers for {nexthop}", **kw)
        return Step(at, dst, FORWARD, to=Place(*owner), **kw)
    host = next((h.name for h in view.host_views.values() if h.port and h.port == dev), None)
    if host is None:
        return _drop(at, dst, UNKNOWN_DEV, f"route {r.dst} uses {dev}, which the view does not know", **kw)
    return Step(at, dst, FORWARD, to=Place(HOST, host), **kw)


def walk(view: ClusterView, start: Place, dst: str, *,
         arrive: Callable[[Place, str], str] | None = None, max_steps: int = 64) -> Iterator[Step]:
    """The steps of a packet from `start` to `dst` until it is delivered or dropped. `arrive(place, dst)`,
    called in every namespace before its decision, may rewrite the destination (a DNAT, conntrack undoing a
    masquerade). A namespace reached twice for the same destination is a routing loop (a DROP, why LOOP)."""
    seen: set[tuple[Place, str]] = set()
    at = start
    for _ in range(max_steps):
        if arrive is not None:
            dst = arrive(at, dst)
        if (at, dst) in seen:
            yield _drop(at, dst, LOOP, f"routing loop at {at} towards {dst}")
            return
        seen.add((at, dst))
        s = step(view, at, dst)
        yield s
        if s.action != FORWARD or s.to is None:
            return
        at = s.to
    yield _drop(at, dst, LOOP, f"more than {max_steps} hops towards {dst}")
