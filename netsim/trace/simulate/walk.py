"""Simulate one packet through a cluster without sending it (ovn-trace style, forking on NAT choices).

The walk, per namespace, mirrors what the kernel does with the first packet of a connection:

1. the source: a pod sends out of its eth0 to its node (every CNI here gives pods a route to the node);
   a node sends from its own stack; an external host sends to the fabric, which bridges to the node that
   owns the destination IP (a node IP, or the node announcing a LoadBalancer/external IP);
2. on a node: nat + filter via `netsim.proxy.interpret.Interpreter` over the node's *actual*
   `iptables-save` (calico's `cali-*` chains left out: policy is decided by the policy model instead, which
   is exactly what felix renders), forking on `-m statistic` rules so every Service endpoint is a branch
   with its probability; a DROP/REJECT (kube-proxy "has no endpoints", "has no local endpoints") ends
   the branch with its rule and comment;
3. NetworkPolicy (calico and canal only; flannel does not enforce it): the source pod's egress on its own
   node, the destination pod's ingress on the node that delivers to it, judged by `PolicyModel.verdict`
   on the DNATed destination, reporting the allowing rule or the isolating policy (calico's EndOfTier
   "trigger", tracing.md section 4);
4. routing: the shared packet walker's decision (`walker.step`): longest-prefix match in the node's
   routes; a VXLAN device resolves the next hop through the PERMANENT neighbour (VTEP MAC) and the FDB entry
   (remote node IP), giving the outer header (local node IP -> remote node IP, UDP port, VNI); eth0 routes
   to another node (host-gw / calico direct) or to the fabric; a veth/bridge route delivers to the local pod
   with that IP;
5. masquerade: the interpreter's MASQUERADE decision with the out interface known (kube-proxy's mark,
   flanneld's chain, felix's cali-nat-outgoing over the node's ipsets); the new source is the out
   interface's address (what the kernel's MASQUERADE picks);
6. the way back (`reply.walk_reply`): where an answer is certain, whether it reaches the source through
   routes and the conntrack entries of every masquerade (`Path.returned`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from netsim.kernel.api import Route
from netsim.parsers.iptables_save import CHAIN, RULE, read_lines
from netsim.policy.felix import workload_iface
from netsim.proxy.interpret import Interpreter, Outcome, Packet
from netsim.trace import hops as H
from netsim.trace.resolve import TraceDestination, TraceSource
from netsim.trace.simulate import walker as W
from netsim.trace.simulate.reply import answer_certain, walk_reply
from netsim.trace.view import ClusterView, NodeKernelState

MAX_NODES_ON_PATH = 8
# The branches of one node's rules walked on to their end. A Service of N endpoints gives N branches, each
# walked through the network and back; at 10,000 endpoints that took longer than ten minutes. Past this many
# the rest are named (`Simulator.unwalked`, their endpoint and probability) but not walked.
MAX_WALKED_BRANCHES = 64
END_OF_TIER = "End of tier default. Drop if no policies passed packet"


def strip_calico(save: str) -> str:
    """iptables-save text without felix's policy chains and its rules in built-in chains. felix's nat
    chains (cali-POSTROUTING -> cali-nat-outgoing, the pool's outgoing masquerade) stay: they are NAT, which
    the interpreter models, over the node's ipsets."""
    out = []
    for ln in read_lines(save):
        if ln.table != "nat" and ln.chain is not None and ln.kind in (CHAIN, RULE):
            if ln.chain.startswith("cali-"):
                continue
            s = ln.text
            if ln.op == "-A" and (" -j cali-" in s or " -g cali-" in s or "cali:" in s):
                continue
        out.append(ln.text)
    return "\n".join(out) + "\n"


def route_text(r: Route) -> str:
    if r.kind == "blackhole":
        return f"blackhole {r.dst}"
    text = r.dst
    if r.via:
        text += f" via {r.via}"
    if r.dev:
        text += f" dev {r.dev}"
    if r.onlink:
        text += " onlink"
    return text


def _hostport(ip: str, port: int | None) -> str:
    return f"{ip}:{port}" if port is not None else ip


@dataclasses.dataclass
class _Pkt:
    src: str
    dst: str
    proto: str
    sport: int | None
    dport: int | None


class Simulator:
    def __init__(
        self, view: ClusterView, source: TraceSource, dest: TraceDestination, sport: int | None = None
    ):
        self.view = view
        self.source = source
        self.dest = dest
        self.sport = sport
        self._interp: dict[str, Interpreter] = {}
        self.first_src = source.ip  # the request's source address as sent (a node picks it by route)
        self.unwalked: dict[str, float] = {}  # endpoint IP -> probability of the branches not walked
        self._retraced: dict[tuple[Any, ...], dict[tuple[str | None, str], Any]] = {}

    # -- helpers ----------------------------------------------------------------------------------
    def interpreter(self, node: str) -> Interpreter:
        if node not in self._interp:
            nv = self.view.node(node)
            self._interp[node] = Interpreter(strip_calico(nv.iptables), nv.local_ips, ipsets=nv.ipsets)
        return self._interp[node]

    def _model_endpoint(self, ip: str, pod_key: str | None = None) -> Any:
        from netsim.policy.model import ExternalEndpoint, NodeEndpoint, PodInfo

        model = self.view.model
        if pod_key and model is not None:
            for p in model.pods:
                if p.key == pod_key:
                    return p
        pod = self.view.pod_by_ip(ip)
        if pod is not None and model is not None:
            for p in model.pods:
                if p.key == pod.key:
                    return p
            return PodInfo(*pod.key.split("/", 1), dict(pod.labels), pod.ip, pod.node)
        node = self.view.node_by_ip(ip)
        if node is None:
            for name in self.view.node_ips:  # a node's tunnel / bridge address
                if ip in self.view.node(name).local_ips:
                    node = name
                    break
        if node is not None:
            return NodeEndpoint(node, ip)
        host = self.view.host_by_ip(ip)
        return ExternalEndpoint(ip, host)

    # -- the walk ---------------------------------------------------------------------------------
    def run(self) -> list[H.Path]:
        src, dst = self.source, self.dest
        proto = dst.protocol.lower()
        path = H.Path()
        if src.kind == "pod":
            node = src.node or ""
            first = W.step(self.view, W.Place(W.POD, src.pod), dst.ip) if self.view.pod(src.pod or "") else None
            if first is not None and first.action == W.DROP:  # its own table (when read) has no way out
                return [self._end(path, H.VERDICT_UNREACHABLE, f"pod {src.pod}", src.netns, H.ROUTING, H.DROPPED,
                                  first.reason)]
            if first is not None and first.to is not None and first.to.kind == W.NODE:
                node = first.to.name
            path.hops.append(
                H.Hop(
                    f"pod {src.pod}",
                    src.netns,
                    H.ROUTING,
                    H.FORWARDED,
                    f"{_hostport(src.ip, self.sport)} -> {_hostport(dst.ip, dst.port)} out of eth0 "
                    f"to node {node}",
                    interface="eth0",
                )
            )
            pkt = _Pkt(src.ip, dst.ip, proto, self.sport, dst.port)
            iface = None
            if self.view.enforces_policy and src.pod:
                iface = workload_iface(*src.pod.split("/", 1))
            return self._at_node(node, pkt, iface, "external", path, 0, egress_pending=True)
        if src.kind == "node":
            nv = self.view.node(src.node or "")
            first = W.step(self.view, W.Place(W.NODE, src.node or ""), dst.ip)
            r = first.route  # the source address the kernel picks: the route's src, else the out device's
            ip = (r.src if r and r.src else None) or (nv.addr_of(first.dev) if first.dev else None) or src.ip
            self.first_src = ip
            pkt = _Pkt(ip, dst.ip, proto, self.sport, dst.port)
            return self._at_node(src.node or "", pkt, None, "local", path, 0)
        # an external host: through the fabric to the node owning the destination address
        pkt = _Pkt(src.ip, dst.ip, proto, self.sport, dst.port)
        host = src.label
        path.hops.append(
            H.Hop(
                host,
                src.netns,
                H.ROUTING,
                H.FORWARDED,
                f"{_hostport(src.ip, self.sport)} -> {_hostport(dst.ip, dst.port)} out of eth0 to the fabric",
                interface="eth0",
            )
        )
        me = next((h for h, ns in self.view.host_netns.items() if ns == src.netns), src.label.split("/")[-1])
        st = W.step(self.view, W.Place(W.HOST, me), dst.ip)
        if st.to is not None and st.to.kind == W.FABRIC:
            st = W.step(self.view, st.to, dst.ip)  # the fabric's decision
        to = st.to if st.action == W.FORWARD else None
        if to is not None and to.kind == W.HOST and self.view.host_ns(to.name) != src.netns:
            path.endpoint, path.endpoint_ip = f"host/{to.name}", dst.ip
            return [
                self._end(
                    path, H.VERDICT_DELIVERED, "fabric", self.view.fabric, H.DELIVERY, H.DELIVERED,
                    f"to external host {to.name} ({dst.ip})", endpoint=path.endpoint,
                )
            ]
        if to is None or to.kind != W.NODE:
            pod = self.view.pod_by_ip(dst.ip)
            reason = (
                f"the fabric has no route to pod IP {dst.ip}"
                if pod
                else f"no node owns or announces {dst.ip} on the underlay"
            )
            return [
                self._end(
                    path, H.VERDICT_UNREACHABLE, "fabric", self.view.fabric, H.ROUTING, H.DROPPED, reason
                )
            ]
        node = to.name
        path.hops.append(
            H.Hop(
                "fabric",
                self.view.fabric,
                H.FORWARDING,
                H.FORWARDED,
                f"underlay bridge to node {node} ({self.view.node_ips[node]})",
            )
        )
        return self._at_node(node, pkt, "eth0", "external", path, 0)

    def _end(
        self,
        path: H.Path,
        verdict: str,
        node: str,
        netns: str,
        component: str,
        action: str,
        detail: str,
        **kw: Any,
    ) -> H.Path:
        path.hops.append(H.Hop(node, netns, component, action, detail, **kw))
        path.verdict = verdict
        path.reason = path.reason or detail
        return path

    def _fork(self, path: H.Path, prob: float) -> H.Path:
        return dataclasses.replace(
            path,
            hops=list(path.hops),
            policies=list(path.policies),
            notes=list(path.notes),
            snat=list(path.snat),
            probability=path.probability * prob,
        )

    def _at_node(
        self,
        node: str,
        pkt: _Pkt,
        in_iface: str | None,
        origin: str,
        path: H.Path,
        depth: int,
        egress_pending: bool = False,
    ) -> list[H.Path]:
        if depth >= MAX_NODES_ON_PATH:
            return [self._end(path, H.VERDICT_UNREACHABLE, node, "", H.ROUTING, H.DROPPED, "routing loop")]
        nv = self.view.node(node)
        interp = self.interpreter(node)
        packet = Packet(
            pkt.src,
            pkt.dst,
            pkt.proto.upper(),
            pkt.dport,
            pkt.sport,
            origin,  # type: ignore[arg-type]
            in_iface=in_iface,
        )
        results: list[H.Path] = []
        outcomes = interp.trace(packet)
        rest = outcomes[MAX_WALKED_BRANCHES:]
        if rest:
            outcomes = outcomes[:MAX_WALKED_BRANCHES]
            for oc in rest:
                ip = (oc.dnat or "").rsplit(":", 1)[0]
                if ip:
                    self.unwalked[ip] = self.unwalked.get(ip, 0.0) + path.probability * oc.probability
            skipped = (f"{node}: {len(rest):,} more of the {len(rest) + len(outcomes):,} branches of its rules "
                       f"(probability {path.probability * sum(oc.probability for oc in rest):.4f} in all) "
                       f"were not walked; the first {len(outcomes)} were")
        for oc in outcomes:
            br = self._fork(path, oc.probability)
            if rest:
                br.notes.append(skipped)
            for n in oc.notes:
                if n not in br.notes:
                    br.notes.append(f"{node}: {n}")
            results += self._branch(node, nv, pkt, in_iface, origin, oc, br, depth, egress_pending)
        return results

    def _branch(
        self,
        node: str,
        nv: NodeKernelState,
        pkt: _Pkt,
        in_iface: str | None,
        origin: str,
        oc: Outcome,
        br: H.Path,
        depth: int,
        egress_pending: bool,
    ) -> list[H.Path]:
        ns = nv.netns
        if oc.dnat:
            svc = next(
                (
                    s
                    for s in reversed(oc.path)
                    if s.table == "nat"
                    and s.chain in ("KUBE-SERVICES", "KUBE-NODEPORTS")
                    and "--comment" in s.rule
                ),
                None,
            )
            svc_comment = _comment(svc.rule) if svc else None
            sep = next((s for s in oc.path if "-j DNAT" in s.rule), None)
            br.hops.append(
                H.Hop(
                    node,
                    ns,
                    H.LB,
                    H.TRANSLATED,
                    f"{_hostport(pkt.dst, pkt.dport)} -> {oc.dnat}"
                    + (f" ({svc_comment})" if svc_comment else ""),
                    chain=sep.chain if sep else None,
                    rule=f"-A {sep.chain} {sep.rule}" if sep else None,
                    translated={"src": pkt.src, "dst": oc.dnat},
                )
            )
        if oc.marked:
            mark = next((s for s in oc.path if "KUBE-MARK-MASQ" in s.rule), None)
            if mark is not None:
                br.hops.append(
                    H.Hop(
                        node,
                        ns,
                        H.NAT,
                        "MarkedForMasquerade",
                        "marked 0x4000 for masquerade",
                        chain=mark.chain,
                        rule=f"-A {mark.chain} {mark.rule}",
                    )
                )
        if oc.verdict in ("drop", "reject"):
            action = H.REJECTED if oc.verdict == "reject" else H.DROPPED
            verdict = H.VERDICT_REJECTED if oc.verdict == "reject" else H.VERDICT_DROPPED
            step = oc.path[-1] if oc.path else None
            return [
                self._end(
                    br,
                    verdict,
                    node,
                    ns,
                    H.FIREWALL,
                    action,
                    oc.comment or oc.rule or oc.verdict,
                    chain=step.chain if step else None,
                    rule=f"-A {step.chain} {step.rule}" if step else None,
                )
            ]
        dst, dport = oc.final_dst, oc.final_dport
        cur = _Pkt(pkt.src, dst, pkt.proto, pkt.sport, dport)
        dst_pod = self.view.pod_by_ip(dst)
        br.endpoint_ip = dst
        br.endpoint = dst_pod.key if dst_pod is not None else None
        # egress policy of the source pod, on its own node
        if egress_pending and self.view.enforces_policy and self.source.pod:
            dropped = self._policy(br, node, ns, "egress", cur, dst_pod)
            if dropped:
                return [br]
        st = W.step(self.view, W.Place(W.NODE, node), dst)  # the shared walker's forwarding decision
        if st.action == W.DELIVER:  # an address of the node, or a route over its lo (an announced IP)
            br.endpoint = f"node/{node}"
            return [
                self._end(
                    br,
                    H.VERDICT_DELIVERED,
                    node,
                    ns,
                    H.DELIVERY,
                    H.DELIVERED,
                    f"to node {node} itself ({_hostport(dst, dport)})",
                    endpoint=br.endpoint,
                    interface=in_iface,
                )
            ]
        route = st.route
        if route is None or st.why == W.NOT_FORWARDING:
            reason = f"no route to {dst}" if route is None else f"{route_text(route)} drops it"
            return [self._end(br, H.VERDICT_UNREACHABLE, node, ns, H.ROUTING, H.DROPPED, reason)]
        out_dev = st.dev or ""
        masq = oc.masquerade
        decided = oc
        if in_iface is not None or out_dev:
            # The rules again with the way out known (masquerade may depend on it), once per way: every
            # branch of a Service's endpoints at this node looks its own up (a re-trace per branch walked
            # 64 x 10,000 outcomes at a 10,000-endpoint Service).
            key = (node, pkt.src, pkt.dst, pkt.proto, pkt.dport, pkt.sport, origin, in_iface, out_dev)
            table = self._retraced.get(key)
            if table is None:
                table = {}
                for o in self.interpreter(node).trace(
                    Packet(
                        pkt.src,
                        pkt.dst,
                        pkt.proto.upper(),
                        pkt.dport,
                        pkt.sport,
                        origin,  # type: ignore[arg-type]
                        in_iface=in_iface,
                        out_iface=out_dev,
                    )
                ):
                    table.setdefault((o.dnat, o.verdict), o)
                self._retraced[key] = table
            again = table.get((oc.dnat, oc.verdict))
            if again is not None:
                masq, decided = again.masquerade, again
        br.hops.append(
            H.Hop(
                node,
                ns,
                H.ROUTING,
                H.FORWARDED,
                f"{dst}: route {route_text(route)}",
                interface=f"{in_iface or ('local' if origin == 'local' else '?')} -> {out_dev}",
            )
        )
        # filter FORWARD (where calico's policy chains run) comes before nat POSTROUTING (where MASQUERADE
        # happens): a pod on this node is policed on the source as it arrived, and a drop there means no SNAT
        pre_snat = cur
        snat_hop = None
        if masq:
            new_src = route.src or nv.addr_of(out_dev) or nv.ip
            snat_hop = H.Hop(
                node,
                ns,
                H.NAT,
                H.TRANSLATED,
                f"masquerade {cur.src} -> {new_src}",
                chain=next((s.chain for s in reversed(decided.path) if "MASQUERADE" in s.rule), "MASQUERADE"),
                translated={"src": new_src, "dst": _hostport(dst, dport)},
            )
            cur = dataclasses.replace(cur, src=new_src)
        pod = self.view.pod(st.to.name) if st.to is not None and st.to.kind == W.POD else None
        if (
            out_dev != W.UPLINK
            and pod is not None
            and self.view.enforces_policy
            and self._policy(br, node, ns, "ingress", pre_snat, pod)
        ):
            return [br]
        if snat_hop is not None:
            br.masquerade = True
            br.hops.append(snat_hop)
            br.snat.append((node, pre_snat.src, cur.src))
        if st.outer is not None or st.why in (W.NO_NEIGH, W.NO_FDB):
            return self._vxlan(node, nv, cur, st, br, depth)
        if out_dev == W.UPLINK:
            return self._underlay(node, ns, cur, st, br, depth)
        if pod is None:
            return [
                self._end(
                    br,
                    H.VERDICT_UNREACHABLE,
                    node,
                    ns,
                    H.ROUTING,
                    H.DROPPED,
                    f"no pod with IP {dst} behind {out_dev}",
                )
            ]
        br.endpoint = pod.key
        br.answered = expected_answer(self.dest.protocol, dport, pod.ports)
        return [
            self._end(
                br,
                H.VERDICT_DELIVERED,
                f"pod {pod.key}",
                pod.netns,
                H.DELIVERY,
                H.DELIVERED,
                f"to pod {pod.key} ({_hostport(dst, dport)})",
                interface="eth0",
                endpoint=pod.key,
            )
        ]

    def _underlay(self, node: str, ns: str, cur: _Pkt, st: W.Step, br: H.Path, depth: int) -> list[H.Path]:
        """Out of the uplink: to another node (host-gw, calico direct, an announced IP), or to the fabric,
        which hands it to an external host or nobody."""
        nxt = st.nexthop or cur.dst
        to = st.to
        if to is not None and to.kind == W.NODE and to.name != node:
            br.hops.append(
                H.Hop(node, ns, H.FORWARDING, H.FORWARDED, f"to node {to.name} ({nxt}) on the underlay",
                      interface=W.UPLINK)
            )
            return self._at_node(to.name, cur, W.UPLINK, "external", br, depth + 1)
        if to is not None and to.kind == W.FABRIC:
            to = W.step(self.view, to, cur.dst).to  # the fabric's own decision
        if to is not None and to.kind == W.HOST:
            br.endpoint = f"host/{to.name}"
            return [
                self._end(
                    br,
                    H.VERDICT_DELIVERED,
                    "fabric",
                    self.view.fabric,
                    H.DELIVERY,
                    H.DELIVERED,
                    f"to external host {to.name} ({cur.dst})",
                    endpoint=br.endpoint,
                )
            ]
        return [
            self._end(
                br, H.VERDICT_UNREACHABLE, node, ns, H.ROUTING, H.FORWARDED, f"leaves the cluster towards {nxt}"
            )
        ]

    def _vxlan(self, node: str, nv: NodeKernelState, cur: _Pkt, st: W.Step, br: H.Path, depth: int) -> list[H.Path]:
        ns = nv.netns
        dev, via = st.dev or "", st.nexthop or cur.dst
        if st.why in (W.NO_NEIGH, W.NO_FDB):
            return [self._end(br, H.VERDICT_UNREACHABLE, node, ns, H.TUNNEL, H.DROPPED, st.reason)]
        outer = st.outer or {}
        tunnel = {k: outer.get(k) for k in ("src", "dst", "vni", "port")}
        br.tunnel = br.tunnel or tunnel
        br.hops.append(
            H.Hop(
                node,
                ns,
                H.TUNNEL,
                H.ENCAPSULATED,
                f"{dev}: {via} is {outer.get('vtepMAC')} at {tunnel['dst']}; outer {tunnel['src']} -> "
                f"{tunnel['dst']} udp/{tunnel['port']} vni {tunnel['vni']}",
                interface=f"{dev} -> eth0",
                tunnel=tunnel,
            )
        )
        if st.action == W.DROP or st.to is None:
            return [self._end(br, H.VERDICT_UNREACHABLE, node, ns, H.TUNNEL, H.DROPPED, st.reason)]
        rnode, rdev = st.to.name, st.wires[-1].ifname
        rv = self.view.node(rnode)
        br.hops.append(
            H.Hop(
                rnode,
                rv.netns,
                H.TUNNEL,
                H.DECAPSULATED,
                f"{rdev}: vni {tunnel['vni']} from {tunnel['src']}",
                interface=f"eth0 -> {rdev}",
                tunnel=tunnel,
            )
        )
        return self._at_node(rnode, cur, rdev, "external", br, depth + 1)

    def _policy(self, br: H.Path, node: str, ns: str, direction: str, cur: _Pkt, dst_pod: Any) -> bool:
        """Judge one side with the policy model; add its hop; True when it drops the packet."""
        model = self.view.model
        if model is None:
            return False
        src_ep = self._model_endpoint(cur.src, self.source.pod if cur.src == self.source.ip else None)
        from netsim.policy.model import ExternalEndpoint, NodeEndpoint

        if self.source.kind == "node" and cur.src != self.source.ip:
            src_ep = NodeEndpoint(self.source.node or "", cur.src)
        elif isinstance(src_ep, NodeEndpoint) and self.source.kind != "node":
            # a forwarded packet masqueraded to a node address: it crosses FORWARD and the pod's policy
            # chains like any other; only packets the node itself sends skip policing (cali-OUTPUT)
            src_ep = ExternalEndpoint(cur.src)
        dst_ep = self._model_endpoint(cur.dst, dst_pod.key if dst_pod is not None else None)
        v = model.verdict(
            src_ep,
            dst_ep,
            cur.dport or 0,
            self.dest.protocol,
            via_service=self.dest.kind in ("service", "ip") and self.dest.ip != cur.dst,
        )
        side = v.egress if direction == "egress" else v.ingress
        pod_key = self.source.pod if direction == "egress" else (dst_pod.key if dst_pod is not None else None)
        chain = None
        if pod_key:
            chain = ("cali-fw-" if direction == "egress" else "cali-tw-") + workload_iface(
                *pod_key.split("/", 1)
            )
        for p in side.isolated_by:
            if p not in br.policies:
                br.policies.append(p)
        if side.allowed:
            if side.match is not None:
                pns, pname = side.match.policy.split("/", 1)
                br.hops.append(
                    H.Hop(
                        node,
                        ns,
                        H.POLICY,
                        H.FORWARDED,
                        f"{direction} allowed by {side.match.describe()}",
                        chain=chain,
                        policy=H.policy_ref(pns, pname, direction, side.match.rule),
                    )
                )
            return False
        first = side.isolated_by[0] if side.isolated_by else "?/?"
        pns, pname = first.split("/", 1)
        ref = H.policy_ref(pns, pname, direction)
        br.policy = ref
        self._end(
            br,
            H.VERDICT_DROPPED,
            node,
            ns,
            H.POLICY,
            H.DROPPED,
            f"{direction} of {pod_key} denied: isolated by {', '.join(side.isolated_by)} and no rule matched",
            chain=chain,
            rule=END_OF_TIER,
            policy=ref,
        )
        return True


def expected_answer(protocol: str, port: int | None, declared: tuple[tuple[int, str], ...]) -> str | None:
    """What the pod sends back: the workload server answers every declared port (TCP: SYN-ACK, UDP: a
    datagram), the pod's kernel refuses the others (RST, ICMP port unreachable). SCTP: unknown here."""
    protocol = protocol.upper()
    if protocol == "ICMP":
        return "echo reply"
    served = (port, protocol) in declared
    if protocol == "TCP":
        return "SYN-ACK" if served else "RST (nothing listens)"
    if protocol == "UDP":
        return "udp reply" if served else "ICMP port unreachable"
    return None


def reply_hops(path: H.Path, source_label: str, source_netns: str) -> list[H.Hop]:
    """The way back of a delivered branch: the answer retraces the forward hops, conntrack undoing each
    translation and each VXLAN hop encapsulating in the other direction."""
    if path.verdict != H.VERDICT_DELIVERED or path.answered is None:
        return []
    last = path.hops[-1]
    out = [
        H.Hop(
            last.node, last.netns, H.DELIVERY, H.REPLIED, path.answered, interface="eth0", direction="reply"
        )
    ]
    for h in reversed(path.hops[:-1]):
        if h.component == H.TUNNEL and h.tunnel:
            t = {**h.tunnel, "src": h.tunnel["dst"], "dst": h.tunnel["src"]}
            action = H.DECAPSULATED if h.action == H.ENCAPSULATED else H.ENCAPSULATED
            detail = f"outer {t['src']} -> {t['dst']} udp/{t['port']} vni {t['vni']}"
            out.append(H.Hop(h.node, h.netns, H.TUNNEL, action, detail, tunnel=t, direction="reply"))
        elif h.component in (H.LB, H.NAT) and h.action == H.TRANSLATED and h.translated:
            what = "DNAT" if h.component == H.LB else "SNAT"
            out.append(
                H.Hop(
                    h.node,
                    h.netns,
                    H.NAT,
                    H.TRANSLATED,
                    f"conntrack undoes the {what}: {h.detail}",
                    direction="reply",
                )
            )
    out.append(H.Hop(source_label, source_netns, H.DELIVERY, H.RECEIVED, path.answered, direction="reply"))
    return out


def _comment(rule: str) -> str | None:
    import shlex

    try:
        words = shlex.split(rule)
    except ValueError:
        return None
    return next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "--comment"), None)


def simulate(
    view: ClusterView, source: TraceSource, dest: TraceDestination, sport: int | None = None,
    unwalked: dict[str, float] | None = None,
) -> list[H.Path]:
    """Every possible fate of the packet, with probabilities summing to 1; delivered branches carry the
    expected answer and its way back (hops with direction "reply"). Past MAX_WALKED_BRANCHES branches at a
    node the rest are not walked: their endpoint IPs and probabilities go into `unwalked` when given."""
    sim = Simulator(view, source, dest, sport)
    paths = sim.run()
    if unwalked is not None:
        unwalked.update(sim.unwalked)
    label = f"pod {source.pod}" if source.kind == "pod" else source.label
    for p in paths:
        if p.verdict == H.VERDICT_REJECTED:  # kube-proxy's REJECT answers with ICMP port unreachable
            p.answered = "RST" if "tcp-reset" in (p.hops[-1].rule or "") else "ICMP port unreachable"
        if p.verdict == H.VERDICT_DELIVERED and answer_certain(dest.protocol, p.endpoint, p.answered):
            back = walk_reply(view, source, p.endpoint or "", _hostport(p.endpoint_ip or dest.ip, None),
                              p.snat[-1][2] if p.snat else sim.first_src, p.snat)
            p.returned = back.returned
            if not back.returned or p.answered is None:  # lost, or an answer the retrace cannot name
                p.hops += back.hops
                continue
        p.hops += reply_hops(p, label, source.netns)
    return paths
