"""The way back, simulated: does the destination's answer reach the source namespace?

A delivered packet is only half a connection. The answer leaves the destination addressed to the source
*as the destination saw it* (after every SNAT on the way) and is routed hop by hop like any packet; a
node that masqueraded the request owns that address, and its conntrack entry turns the answer's
destination back into the address before the masquerade (the reverse NAT of nf_nat's
`nf_nat_packet` on the reply direction) and routes on. The walk is the shared packet walker's
(`walker.walk`, the decisions of `walker.step`), over the same `ClusterView` the forward simulation reads:

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
from netsim.trace.simulate import walker as W
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
    responder saw it; `snat`: (node, before, after) of every masquerade the request went through. The answer
    is walked by the shared packet walker (`walker.walk`), conntrack undoing each masquerade where the
    answer reaches the node that made it."""
    pending = list(snat)
    hops: list[H.Hop] = []

    def hop(node: str, netns: str, component: str, action: str, detail: str, interface: str | None = None) -> None:
        hops.append(H.Hop(node, netns, component, action, detail, interface=interface, direction="reply"))

    def lost(node: str, netns: str, reason: str) -> ReplyWalk:
        hop(node, netns, H.ROUTING, H.DROPPED, f"the answer is lost: {reason}")
        return ReplyWalk(False, reason, hops)

    def arrive(at: W.Place, dst: str) -> str:
        """conntrack's reverse NAT (nf_nat_packet, reply direction) where the answer reaches the node that
        masqueraded the request: the destination becomes the address before the masquerade."""
        while at.kind == W.NODE and W.owns(view, at, dst):
            undo = next((s for s in reversed(pending) if s[0] == at.name and s[2] == dst), None)
            if undo is None:
                break
            pending.remove(undo)
            hop(at.name, view.node(at.name).netns, H.NAT, H.TRANSLATED,
                f"conntrack undoes the masquerade: {dst} -> {undo[1]}")
            dst = undo[1]
        return dst

    if responder.startswith("node/"):
        start = W.Place(W.NODE, responder[5:])
    elif responder.startswith("host/"):
        start = W.Place(W.HOST, responder[5:])
    else:
        if view.pod(responder) is None:
            return ReplyWalk(False, f"no pod {responder}", hops)
        start = W.Place(W.POD, responder)
    for st in W.walk(view, start, reply_dst, arrive=arrive, max_steps=MAX_STEPS):
        at, dst = st.at, st.dst
        if st.why == W.LOOP:
            break
        if at.kind == W.FABRIC:
            if st.action == W.DROP:
                return lost("fabric", view.fabric, f"the fabric has no route to {dst}: the underlay routes node "
                                                   "and external host addresses only")
            if st.to is not None and st.to.kind == W.NODE:
                hop("fabric", view.fabric, H.FORWARDING, H.FORWARDED, f"underlay bridge to node {st.to.name} ({dst})")
            continue
        if at.kind == W.HOST:
            label, ns = f"host/{at.name}", view.host_ns(at.name)
            if st.action == W.DELIVER:
                if ns == source.netns:
                    hop(label, ns, H.DELIVERY, H.RECEIVED, f"the answer reaches {label}")
                    return ReplyWalk(True, "", hops)
                return lost("fabric", view.fabric, f"it goes to {label} ({dst}), not to the source")
            if st.action == W.DROP:
                return lost(label, ns, f"{label} has no route to {dst}")
            hop(label, ns, H.ROUTING, H.FORWARDED, f"{reply_src} -> {dst} out of eth0 to the fabric")
            continue
        if at.kind == W.POD:
            pod = view.pod(at.name)
            assert pod is not None
            if st.action == W.DELIVER:
                if pod.netns == source.netns:
                    hop(f"pod {pod.key}", pod.netns, H.DELIVERY, H.RECEIVED, f"the answer reaches pod {pod.key}",
                        interface="eth0")
                    return ReplyWalk(True, "", hops)
                return lost(pod.node, view.node_ns(pod.node), f"it goes to pod {pod.key} ({dst}), not to the source")
            if st.action == W.DROP:
                return lost(f"pod {pod.key}", pod.netns, f"pod {pod.key} has no route to {dst}")
            hop(f"pod {pod.key}", pod.netns, H.ROUTING, H.FORWARDED,
                f"{reply_src} -> {dst} out of eth0 to node {pod.node}")
            continue
        where = at.name
        ns = view.node(where).netns
        if st.action == W.DELIVER:
            if source.kind == "node" and source.node == where:
                hop(where, ns, H.DELIVERY, H.RECEIVED, f"the answer reaches node {where} ({dst})")
                return ReplyWalk(True, "", hops)
            return lost(where, ns, f"it goes to node {where} ({dst}), which did not send the request")
        if st.action == W.DROP:
            return lost(where, ns, _node_loss(where, st))
        to = st.to
        assert to is not None
        if st.outer is not None:
            hop(where, ns, H.TUNNEL, H.ENCAPSULATED, f"{dst} via {st.dev} to node {to.name} ({st.outer['dst']})",
                interface=f"{st.dev} -> eth0")
        elif st.dev == W.UPLINK and to.kind == W.NODE:
            hop(where, ns, H.FORWARDING, H.FORWARDED, f"{dst} via node {to.name} ({st.nexthop}) on the underlay",
                interface="eth0")
        elif st.dev == W.UPLINK:
            hop(where, ns, H.ROUTING, H.FORWARDED, f"{dst} out of eth0 to the underlay", interface="eth0")
    return ReplyWalk(False, "routing loop on the way back", hops)


def _node_loss(where: str, st: W.Step) -> str:
    if st.why == W.NO_ROUTE:
        return f"node {where} has no route to {st.dst}"
    if st.why == W.NOT_FORWARDING and st.route is not None:
        return f"node {where} has a {st.route.kind} route ({st.route.dst}) to {st.dst}"
    if st.why in (W.NO_NEIGH, W.NO_FDB, W.VTEP_UNKNOWN):
        return f"{st.dev} cannot resolve {st.nexthop} to a node"
    if st.why in (W.NO_POD, W.NO_OWNER) and st.dev != W.UPLINK:
        return f"no pod with IP {st.dst} behind {st.dev}"
    return st.reason


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
