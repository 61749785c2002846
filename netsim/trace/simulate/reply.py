"""The way back, simulated: does the destination's answer reach the source namespace?

A delivered packet is only half a connection. The answer leaves the destination addressed to the source
*as the destination saw it* (after every SNAT on the way) and is routed hop by hop like any packet; a
node that masqueraded the request owns that address, and its conntrack entry turns the answer's
destination back into the address before the masquerade (the reverse NAT of nf_nat's
`nf_nat_packet` on the reply direction) and routes on. The walk, over the same `ClusterView` the forward
simulation reads:

* a pod answers through its node (every CNI here gives pods one route, to their node);
* a node: its own address -> undo the SNAT it did for this flow, or it is the source node; else the
  longest-prefix route: a VXLAN device (neighbour -> FDB -> remote node), eth0 to another node (host-gw,
  calico direct), eth0 to the gateway (the fabric), a veth/bridge route to a local pod, or no route /
  a blackhole (the answer is lost there);
* an external host answers through the fabric (its default route, or the shared underlay segment);
* the fabric (`netsim/fabric.py`) knows the underlay and the external subnets only: node and host
  addresses, never pod or Service addresses - which is why pod traffic must be masqueraded to leave
  the cluster (flanneld's --ip-masq, calico's natOutgoing).

Pure; conntrack undoing a DNAT on the way back is not modelled (the answer's source address is not what
decides whether it arrives).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netsim.trace import hops as H
from netsim.trace.resolve import TraceSource
from netsim.trace.view import ClusterView

MAX_STEPS = 24


@dataclass
class ReplyWalk:
    returned: bool
    reason: str = ""
    hops: list[H.Hop] = field(default_factory=list)


def walk_reply(
    view: ClusterView,
    source: TraceSource,
    responder: str,
    reply_src: str,
    reply_dst: str,
    snat: list[tuple[str, str, str]],
) -> ReplyWalk:
    """`responder`: `node/NAME`, `host/NAME` or a pod `ns/name`; `reply_dst`: the request's source as the
    responder saw it; `snat`: (node, before, after) of every masquerade the request went through."""
    pending = list(snat)
    hops: list[H.Hop] = []
    dst = reply_dst

    def hop(node: str, netns: str, component: str, action: str, detail: str, interface: str | None = None) -> None:
        hops.append(H.Hop(node, netns, component, action, detail, interface=interface, direction="reply"))

    def lost(node: str, netns: str, reason: str) -> ReplyWalk:
        hop(node, netns, H.ROUTING, H.DROPPED, f"the answer is lost: {reason}")
        return ReplyWalk(False, reason, hops)

    if responder.startswith("node/"):
        kind, where = "node", responder[5:]
    elif responder.startswith("host/"):
        kind, where = "fabric", ""
        hop(responder, view.host_ns(responder[5:]), H.ROUTING, H.FORWARDED,
            f"{reply_src} -> {dst} out of eth0 to the fabric")
    else:
        pod = view.pod(responder)
        if pod is None:
            return ReplyWalk(False, f"no pod {responder}", hops)
        kind, where = "node", pod.node
        hop(f"pod {pod.key}", pod.netns, H.ROUTING, H.FORWARDED, f"{reply_src} -> {dst} out of eth0 to node {pod.node}")
    for _ in range(MAX_STEPS):
        if kind == "fabric":
            node = view.node_by_ip(dst)
            host = view.host_by_ip(dst)
            if node is not None:
                hop("fabric", view.fabric, H.FORWARDING, H.FORWARDED, f"underlay bridge to node {node} ({dst})")
                kind, where = "node", node
                continue
            if host is not None:
                if view.host_ns(host) == source.netns:
                    hop(f"host/{host}", source.netns, H.DELIVERY, H.RECEIVED, f"the answer reaches host/{host}")
                    return ReplyWalk(True, "", hops)
                return lost("fabric", view.fabric, f"it goes to host/{host} ({dst}), not to the source")
            return lost("fabric", view.fabric, f"the fabric has no route to {dst}: the underlay routes node "
                                               "and external host addresses only")
        nv = view.node(where)
        ns = nv.netns
        if dst in nv.local_ips or dst.startswith("127."):
            undo = next((s for s in reversed(pending) if s[0] == where and s[2] == dst), None)
            if undo is not None:
                pending.remove(undo)
                hop(where, ns, H.NAT, H.TRANSLATED, f"conntrack undoes the masquerade: {dst} -> {undo[1]}")
                dst = undo[1]
                continue
            if source.kind == "node" and source.node == where:
                hop(where, ns, H.DELIVERY, H.RECEIVED, f"the answer reaches node {where} ({dst})")
                return ReplyWalk(True, "", hops)
            return lost(where, ns, f"it goes to node {where} ({dst}), which did not send the request")
        step = nv.next_hop(dst)
        route = step.route
        if route is None or not step.forwards:
            what = "no route" if route is None else f"a {route.kind} route ({route.dst})"
            return lost(where, ns, f"node {where} has {what} to {dst}")
        dev = step.dev or ""
        link = nv.links.get(dev)
        if link is not None and link.kind == "vxlan":
            via = step.nexthop
            _, fdb = nv.vxlan_peer(dev, via)
            vtep = fdb.dst if fdb is not None else None
            remote = view.node_by_ip(vtep) if vtep else None
            if remote is None:
                return lost(where, ns, f"{dev} cannot resolve {via} to a node")
            hop(where, ns, H.TUNNEL, H.ENCAPSULATED, f"{dst} via {dev} to node {remote} ({vtep})",
                interface=f"{dev} -> eth0")
            kind, where = "node", remote
            continue
        if dev == "eth0":
            nxt = step.nexthop
            other = view.node_by_ip(nxt)
            if other is not None and other != where:
                hop(where, ns, H.FORWARDING, H.FORWARDED, f"{dst} via node {other} ({nxt}) on the underlay",
                    interface="eth0")
                kind, where = "node", other
                continue
            hop(where, ns, H.ROUTING, H.FORWARDED, f"{dst} out of eth0 to the underlay", interface="eth0")
            kind = "fabric"
            continue
        pod = view.pod_by_ip(dst, where)
        if pod is None:
            return lost(where, ns, f"no pod with IP {dst} behind {dev}")
        if pod.netns == source.netns:
            hop(f"pod {pod.key}", pod.netns, H.DELIVERY, H.RECEIVED, f"the answer reaches pod {pod.key}",
                interface="eth0")
            return ReplyWalk(True, "", hops)
        return lost(where, ns, f"it goes to pod {pod.key} ({dst}), not to the source")
    return ReplyWalk(False, "routing loop on the way back", hops)


def answer_certain(protocol: str, endpoint: str | None, answered: str | None) -> bool:
    """Does the destination certainly answer? TCP always does (SYN-ACK, or RST when nothing listens:
    hosts and pods have no firewall of their own), ICMP echo always; UDP only where the model knows what
    listens (a pod: the workload server on declared ports, ICMP port unreachable elsewhere); SCTP and
    UDP to nodes or hosts: unknown."""
    protocol = protocol.upper()
    if protocol in ("TCP", "ICMP"):
        return True
    return protocol == "UDP" and answered is not None and endpoint is not None and "/" in endpoint \
        and not endpoint.startswith(("node/", "host/"))


__all__ = ["ReplyWalk", "answer_certain", "walk_reply"]
