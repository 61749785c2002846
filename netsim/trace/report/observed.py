"""Pure: what the kernel reported of one traced packet -> the observed `hops.Path`.

Input is a `RawObservation` (nft trace events per namespace, conntrack entries of the flow, captured
copies) as `netsim.trace.observe.cluster.observe_path` collects it. Namespaces are put in path order by the TTL the
packet arrived with (each routing hop decrements it; VXLAN keeps the inner TTL), the source first; per
node the netfilter decisions become LB / NAT / NetworkPolicy / Firewall / Forwarding hops (calico's policy
chains are mapped back to `ns/name` and rule index through the comments felix renders: "Policy ns/name
ingress" on the jump, "ns/name ingress[i] ..." on the Allow rule, "End of tier default" on the drop), the
output interface and the route give a Routing hop, VXLAN copies on eth0 give the tunnel outer header, a
copy arriving on a pod's eth0 is Delivered, and copies of what came back are the reply hops.

`LooseTag` is the tag a cluster trace uses (IP ID + protocol): masquerade --random-fully rewrites the
source port, so only those survive the whole path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from netsim.trace import hops as H
from netsim.trace.observe.capture import CapturedPacket
from netsim.trace.observe.conntrack import CtEntry
from netsim.trace.observe.nftrace import TraceEvent, decisions
from netsim.trace.observe.packet import PacketInfo
from netsim.trace.observe.raw import RawObservation, is_reply, reply_tuples
from netsim.trace.observe.tag import TraceTag
from netsim.trace.resolve import TraceDestination, TraceSource
from netsim.trace.simulate.walk import route_text
from netsim.trace.view import ClusterView

_POLICY_JUMP = re.compile(r"^Policy (\S+)/(\S+) (ingress|egress)$")
_POLICY_RULE = re.compile(r"^(\S+)/(\S+) (ingress|egress)\[(\d+)\]")
_DNAT_TO = re.compile(r"--to-destination (\S+)")


# ----------------------------------------------------------------------------------------------- tag, replies


@dataclass(frozen=True)
class LooseTag(TraceTag):
    """The trace tag without the source port: masquerade with --random-fully (kube-proxy, flannel) rewrites
    the source port (and an ICMP echo id), so on the far side of a SNAT only the IP ID and the protocol
    still identify the packet. A 16-bit random IP ID in a window of a few hundred milliseconds."""

    def nft_match(self) -> str:
        if self.proto == "icmp":
            return f"ip id {self.ip_id} ip protocol icmp icmp type echo-request"
        return f"ip id {self.ip_id} ip protocol {self.proto}"

    def matches(self, pkt: PacketInfo | None) -> bool:
        if pkt is None or pkt.proto != self.proto_num or pkt.ip_id != self.ip_id:
            return False
        return self.proto != "icmp" or pkt.icmp_type == 8


def _comment(ev: TraceEvent) -> str | None:
    return ev.rule.comment if ev.rule else None


def _rule_text(ev: TraceEvent) -> str | None:
    return ev.rule.text if ev.rule else None


def _clean_comment(c: str | None) -> str | None:
    """Drop calico's `cali:<hash>` rule ids from a joined comment."""
    if not c:
        return c
    words = [w for w in c.split(" ") if not w.startswith("cali:")]
    return " ".join(words).strip() or None


def _arrival(events: list[TraceEvent]) -> TraceEvent | None:
    """The first event that shows the packet (the tagging table's own rule event carries headers)."""
    return next((e for e in events if e.packet is not None), None)


def _ttl(events: list[TraceEvent]) -> int:
    ev = _arrival(events)
    return ev.packet.ttl if ev and ev.packet else 0


def order_namespaces(events: dict[str, list[TraceEvent]], source_ns: str) -> list[str]:
    """Namespaces with events in the order the packet crossed them: source first, then by falling TTL."""
    seen = [ns for ns, evs in events.items() if evs]
    rest = sorted((ns for ns in seen if ns != source_ns), key=lambda ns: -_ttl(events[ns]))
    return ([source_ns] if source_ns in seen else []) + rest


def _tcp_answer(p: PacketInfo) -> str:
    flags = p.tcp_flags or ""
    if "R" in flags:
        return "RST (nothing listens)"
    if "S" in flags and "A" in flags:
        return "SYN-ACK"
    return f"TCP [{flags}]"


def answer_text(p: PacketInfo) -> str:
    if p.proto == 6:
        return _tcp_answer(p)
    if p.proto == 1:
        if p.icmp_type == 0:
            return "echo reply"
        if p.icmp_type == 3:
            return {
                3: "ICMP port unreachable",
                1: "ICMP host unreachable",
                2: "ICMP protocol unreachable",
                13: "ICMP admin prohibited",
            }.get(p.icmp_code or 0, f"ICMP unreachable code {p.icmp_code}")
        return f"ICMP type {p.icmp_type}"
    return f"{p.proto_name} reply"


def build_observed(
    view: ClusterView, source: TraceSource, dest: TraceDestination, tag: TraceTag, raw: RawObservation
) -> H.Path:
    path = H.Path()
    if raw.error:
        path.hops.append(H.Hop(view.label_of(source.netns), source.netns, H.ROUTING, H.DROPPED, raw.error))
        path.verdict, path.reason = H.VERDICT_UNREACHABLE, raw.error
        return path
    order = order_namespaces(raw.events, source.netns)
    captured_request = [p for p in raw.packets if p.info.packet is not None and tag.matches(p.info.packet)]
    replies = [p for p in raw.packets if is_reply(p, tag, reply_tuples(raw.conntrack))]
    delivered_ns: str | None = None
    if source.kind in ("pod", "host"):
        sent = next((p for p in captured_request if p.ns == source.netns and p.direction == "outgoing"), None)
        label = view.label_of(source.netns)
        if sent is not None:
            path.hops.append(
                H.Hop(
                    label,
                    source.netns,
                    H.ROUTING,
                    H.FORWARDED,
                    f"sent {sent.info.packet.summary()}",
                    interface=sent.ifname,
                )
            )
        else:
            path.hops.append(H.Hop(label, source.netns, H.ROUTING, H.FORWARDED, "sent (no copy captured)"))
    for ns in order:
        if view.kind_of(ns) not in ("node", "fabric"):
            continue
        if _node_hops(
            view, ns, view.label_of(ns), raw.events[ns], raw.conntrack.get(ns) or [], captured_request, path
        ):
            break
    if path.verdict == H.VERDICT_UNREACHABLE:
        arrived = next(
            (
                p
                for p in captured_request
                # arriving in a pod or host; in the source itself too: a pod reaching itself through a
                # Service (hairpin, masqueraded by kube-proxy) gets its own packet back
                if p.direction != "outgoing" and view.kind_of(p.ns) in ("pod", "host")
            ),
            None,
        )
        if arrived is not None:
            delivered_ns = arrived.ns
            label = view.label_of(arrived.ns)
            pk = arrived.info.packet
            what = f"{pk.dst}:{pk.dport}" if pk.dport is not None else pk.dst
            path.hops.append(
                H.Hop(
                    label,
                    arrived.ns,
                    H.DELIVERY,
                    H.DELIVERED,
                    f"to {label} ({what})",
                    interface=arrived.ifname,
                    endpoint=label.removeprefix("pod "),
                )
            )
    if delivered_ns is not None and path.verdict == H.VERDICT_UNREACHABLE:
        path.verdict = H.VERDICT_DELIVERED
        label = view.label_of(delivered_ns)
        path.endpoint = label.removeprefix("pod ")
        pod = view.pod(path.endpoint)
        path.endpoint_ip = pod.ip if pod else None
    if path.verdict == H.VERDICT_DELIVERED and path.endpoint_ip is None and path.endpoint:
        host = path.endpoint.removeprefix("host/") if path.endpoint.startswith("host/") else None
        path.endpoint_ip = view.hosts.get(host) if host else None
    if path.verdict != H.VERDICT_DELIVERED and path.endpoint is None:
        ip = path.endpoint_ip or dest.ip
        pod = view.pod_by_ip(ip)
        if pod is not None:
            path.endpoint, path.endpoint_ip = pod.key, ip
    if path.verdict == H.VERDICT_UNREACHABLE and not path.reason:
        last = path.hops[-1] if path.hops else None
        path.reason = f"the packet was last seen on {last.node}" if last else "the packet was not seen"
    # what came back
    for p in replies:
        pk = p.info.packet
        label = view.label_of(p.ns)
        if p.info.vni is not None:
            o = p.info.outer
            tunnel = {"src": o.src, "dst": o.dst, "vni": p.info.vni, "port": o.dport} if o else None
            ends = (
                f"{pk.src}:{pk.sport} -> {pk.dst}:{pk.dport}"
                if pk.sport is not None
                else f"{pk.src} -> {pk.dst}"
            )
            path.hops.append(
                H.Hop(
                    label,
                    p.ns,
                    H.TUNNEL,
                    H.ENCAPSULATED if p.direction == "outgoing" else H.DECAPSULATED,
                    f"{answer_text(pk)} {ends}",
                    interface=p.ifname,
                    tunnel=tunnel,
                    direction="reply",
                )
            )
            continue
        if p.direction == "outgoing" and view.kind_of(p.ns) in ("pod", "host"):
            path.answered = path.answered or answer_text(pk)
            path.hops.append(
                H.Hop(
                    label,
                    p.ns,
                    H.DELIVERY,
                    H.REPLIED,
                    f"{answer_text(pk)} {pk.summary()}",
                    interface=p.ifname,
                    direction="reply",
                )
            )
        elif p.ns == source.netns and p.direction != "outgoing":
            path.answered = path.answered or answer_text(pk)
            if path.returned:
                continue  # one Received hop (a node source may see it on a veth and then its bridge)
            path.returned = True
            path.hops.append(
                H.Hop(
                    label,
                    p.ns,
                    H.DELIVERY,
                    H.RECEIVED,
                    f"{answer_text(pk)} {pk.summary()}",
                    interface=p.ifname,
                    direction="reply",
                )
            )
    _delivered_by_its_answer(view, dest, path)
    if path.verdict == H.VERDICT_DELIVERED and not path.returned:
        path.returned = False
    elif path.verdict != H.VERDICT_DELIVERED:
        path.returned = None
    if path.verdict == H.VERDICT_DELIVERED and path.answered is None:
        seen = [e for ents in raw.conntrack.values() for e in ents if "SEEN_REPLY" in e.flags]
        if seen:
            path.answered = "reply (conntrack SEEN_REPLY)"
    return path


# What the destination itself sends back when the packet reached it (not an ICMP error from a router, not a
# reset a node sends for a Service without endpoints: those are "RST"/"ICMP ..." and prove nothing).
_DESTINATION_ANSWERS = ("SYN-ACK", "echo reply", "udp reply")


def _delivered_by_its_answer(view: ClusterView, dest: TraceDestination, path: H.Path) -> None:
    """A packet whose arrival was not observed, but whose destination's answer came back to the source, was
    delivered. This happens when the kernel picked an endpoint outside the observed scope: past
    MAX_WALKED_BRANCHES of a large Service the simulator names endpoints without walking them, and their
    namespaces are not watched (10,000 of them would cost more than the trace). The verdict is then
    "delivered", the endpoint the one its answer came from, and the delivery hop says it was not seen."""
    if path.verdict != H.VERDICT_UNREACHABLE or not path.returned or path.answered not in _DESTINATION_ANSWERS:
        return
    ip = path.endpoint_ip or dest.ip
    pod = view.pod_by_ip(ip)
    label = f"pod {pod.key}" if pod is not None else ip
    at = next((i for i, h in enumerate(path.hops) if h.direction == "reply"), len(path.hops))
    # where it was sent: the last DNAT's destination (a Service's target port), else the destination's own
    to = next((h.translated["dst"] for h in reversed(path.hops[:at]) if h.translated and h.translated.get("dst")),
              f"{ip}:{dest.port}")
    path.hops.insert(at, H.Hop(label, pod.netns if pod is not None else "", H.DELIVERY, H.DELIVERED,
                               f"to {label} ({to}): not observed there, its {path.answered} came back",
                               endpoint=pod.key if pod is not None else None))
    path.verdict, path.reason = H.VERDICT_DELIVERED, None
    path.endpoint, path.endpoint_ip = (pod.key if pod is not None else path.endpoint), ip


def _node_hops(
    view: ClusterView,
    ns: str,
    label: str,
    evs: list[TraceEvent],
    ct: list[CtEntry],
    captured: list[CapturedPacket],
    path: H.Path,
) -> bool:
    """Hops of one node (or the fabric); True when the packet's trace ends here."""
    arr = _arrival(evs)
    iif = arr.iif_name if arr else None
    node_name = view.node_of_ns(ns)
    nv = view.node(node_name) if node_name else None
    if nv is not None and iif:
        link = nv.links.get(iif)
        if link is not None and link.kind == "vxlan":
            cap = next(
                (p for p in captured if p.ns == ns and p.info.vni is not None and p.direction != "outgoing"),
                None,
            )
            tunnel = None
            if cap is not None and cap.info.outer is not None:
                o = cap.info.outer
                tunnel = {"src": o.src, "dst": o.dst, "vni": cap.info.vni, "port": o.dport}
            path.hops.append(
                H.Hop(
                    label,
                    ns,
                    H.TUNNEL,
                    H.DECAPSULATED,
                    f"{iif}: vni {tunnel['vni']} from {tunnel['src']}" if tunnel else iif,
                    interface=f"eth0 -> {iif}",
                    tunnel=tunnel,
                )
            )
    steps = decisions(evs)
    svc_comment = None
    policies_seen: dict[str, tuple[str, str, str]] = {}  # endpoint chain -> last policy jumped to
    oif = None
    last_pkt = arr.packet if arr else None
    local_in = False
    for e in steps:
        if e.rule is not None or e.type == "policy":
            path.rules.append(
                {
                    "node": label,
                    "table": e.table,
                    "chain": e.chain,
                    "verdict": e.outcome,
                    "target": e.target,
                    "rule": _rule_text(e),
                    "comment": _clean_comment(_comment(e)),
                }
            )
        if e.packet is not None:
            last_pkt = e.packet
        if e.oif_name:
            oif = e.oif_name
        c = _clean_comment(_comment(e))
        text = _rule_text(e) or ""
        if (
            e.table == "nat"
            and e.verdict == "jump"
            and (e.target or "").startswith(("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-"))
        ):
            svc_comment = svc_comment or c
        elif e.table == "nat" and e.verdict == "jump" and e.target == "KUBE-MARK-MASQ":
            path.hops.append(
                H.Hop(
                    label,
                    ns,
                    H.NAT,
                    "MarkedForMasquerade",
                    "marked 0x4000 for masquerade" + (f" ({c})" if c else ""),
                    chain=e.chain,
                    rule=text,
                )
            )
        elif e.table == "nat" and e.outcome == "accept" and "DNAT" in text:
            m = _DNAT_TO.search(text)
            to = m.group(1) if m else "?"
            entry = next(
                (x for x in ct if x.original.dst == (last_pkt.dst if last_pkt else None)),
                ct[0] if ct else None,
            )
            if entry is not None and entry.reply.sport is not None:
                to = f"{entry.reply.src}:{entry.reply.sport}"
            before = (
                f"{last_pkt.dst}:{last_pkt.dport}"
                if last_pkt and last_pkt.dport
                else (last_pkt.dst if last_pkt else "?")
            )
            path.endpoint_ip = to.rsplit(":", 1)[0]
            path.hops.append(
                H.Hop(
                    label,
                    ns,
                    H.LB,
                    H.TRANSLATED,
                    f"{before} -> {to}" + (f" ({svc_comment})" if svc_comment else ""),
                    chain=e.chain,
                    rule=text,
                    translated={"src": last_pkt.src if last_pkt else "", "dst": to},
                )
            )
        elif e.table == "nat" and e.outcome == "accept" and ("MASQUERADE" in text or "SNAT" in text):
            entry = ct[0] if ct else None
            new_src = entry.reply.dst if entry is not None else "?"
            old = entry.original.src if entry is not None else (last_pkt.src if last_pkt else "?")
            if entry is not None:
                path.masquerade = True
                if entry.reply.dport is not None and entry.original.sport is not None:
                    new_src, old = f"{new_src}:{entry.reply.dport}", f"{old}:{entry.original.sport}"
                path.hops.append(
                    H.Hop(
                        label,
                        ns,
                        H.NAT,
                        H.TRANSLATED,
                        f"masquerade {old} -> {new_src}" + (f" ({c})" if c else ""),
                        chain=e.chain,
                        rule=text,
                        translated={"src": new_src, "dst": entry.reply.src if entry else ""},
                    )
                )
        elif (
            e.table == "filter"
            and e.verdict in ("jump", "goto")
            and (e.target or "").startswith(("cali-pi-", "cali-po-"))
        ):
            m = _POLICY_JUMP.match(c or "")
            if m:
                policies_seen[e.chain] = (m.group(1), m.group(2), m.group(3))
                key = f"{m.group(1)}/{m.group(2)}"
                if key not in path.policies:
                    path.policies.append(key)
        elif (
            e.table == "filter"
            and e.chain.startswith(("cali-pi-", "cali-po-"))
            and "--set-xmark 0x10000/0x10000" in text
        ):  # felix's Allow: set the accept mark, then RETURN
            m = _POLICY_RULE.match(c or "")
            if m:
                d = m.group(3)
                path.hops.append(
                    H.Hop(
                        label,
                        ns,
                        H.POLICY,
                        H.FORWARDED,
                        f"{d} allowed by {c}",
                        chain=e.chain,
                        rule=text,
                        policy=H.policy_ref(m.group(1), m.group(2), d, int(m.group(4))),
                    )
                )
        if e.outcome == "drop":
            reject = "REJECT" in text
            action = H.REJECTED if reject else H.DROPPED
            path.verdict = H.VERDICT_REJECTED if reject else H.VERDICT_DROPPED
            if e.chain.startswith(("cali-tw-", "cali-fw-")):
                direction = "ingress" if e.chain.startswith("cali-tw-") else "egress"
                pol = policies_seen.get(e.chain)
                ref = H.policy_ref(pol[0], pol[1], direction) if pol else None
                path.policy = ref
                path.reason = f"{direction} {c or 'dropped'}" + (
                    f" (isolated by {pol[0]}/{pol[1]})" if pol else ""
                )
                path.hops.append(
                    H.Hop(
                        label,
                        ns,
                        H.POLICY,
                        action,
                        path.reason,
                        chain=e.chain,
                        rule=c or text,
                        policy=ref,
                        interface=f"{iif or '?'} -> {oif or '?'}",
                    )
                )
            else:
                path.reason = c or text or "dropped"
                path.hops.append(
                    H.Hop(
                        label,
                        ns,
                        H.FIREWALL,
                        action,
                        path.reason,
                        chain=e.chain,
                        rule=text,
                        interface=f"{iif or '?'} -> {oif or '?'}",
                    )
                )
            return True
        if e.table == "filter" and e.chain in ("INPUT",) and e.outcome == "accept":
            local_in = True
    dnat_here = any(
        e.table == "nat" and e.outcome == "accept" and "DNAT" in (_rule_text(e) or "") for e in steps
    )
    to_me = nv is not None and last_pkt is not None and last_pkt.dst in nv.local_ips and not dnat_here
    forwarded = any(e.table == "filter" and e.chain == "FORWARD" for e in steps)
    if (
        local_in
        or any(e.table == "filter" and e.chain == "INPUT" for e in steps)
        or (to_me and not forwarded)
    ):
        dst = last_pkt.dst if last_pkt else "?"
        path.verdict = H.VERDICT_DELIVERED
        path.endpoint = f"node/{node_name}" if node_name else label
        path.hops.append(
            H.Hop(
                label,
                ns,
                H.DELIVERY,
                H.DELIVERED,
                f"to {label} itself ({dst})",
                interface=iif,
                endpoint=path.endpoint,
            )
        )
        return True
    fwd = [
        e
        for e in steps
        if e.table == "filter"
        and e.chain in ("FORWARD", "FLANNEL-FWD", "KUBE-FORWARD")
        and e.outcome == "accept"
    ]
    if fwd:
        c = _clean_comment(_comment(fwd[-1]))
        path.hops.append(
            H.Hop(
                label,
                ns,
                H.FORWARDING,
                H.FORWARDED,
                f"accepted by {fwd[-1].chain}" + (f": {c}" if c else ""),
                chain=fwd[-1].chain,
                rule=_rule_text(fwd[-1]),
            )
        )
    if oif is None:
        oif = next((e.oif_name for e in evs if e.oif_name), None)
    dst = last_pkt.dst if last_pkt else None
    route = nv.route_for(dst) if nv is not None and dst else None
    if oif is None and arr is not None and (route is None or route.kind != "unicast") and nv is not None:
        reason = f"no route to {dst}" if route is None else f"{route_text(route)} drops it"
        path.hops.append(H.Hop(label, ns, H.ROUTING, H.DROPPED, reason, interface=iif))
        path.reason = reason
        return True
    if oif is None and route is not None and route.kind == "unicast" and route.dev:
        oif = route.dev  # no rule looked at the packet after routing: the route says where it went
    if oif is not None:
        detail = f"{dst}: route {route_text(route)}" if route else f"{dst} out of {oif}"
        path.hops.append(
            H.Hop(label, ns, H.ROUTING, H.FORWARDED, detail, interface=f"{iif or 'local'} -> {oif}")
        )
        link = nv.links.get(oif) if nv is not None else None
        nxt = view.node_by_ip(route.via) if route is not None and route.via and oif == "eth0" else None
        if nxt is not None:
            path.hops.append(
                H.Hop(
                    label,
                    ns,
                    H.FORWARDING,
                    H.FORWARDED,
                    f"to node {nxt} ({route.via}) on the underlay, no encapsulation",
                    interface="eth0",
                )
            )
        if link is not None and link.kind == "vxlan":
            cap = next(
                (p for p in captured if p.ns == ns and p.info.vni is not None and p.direction == "outgoing"),
                None,
            )
            if cap is not None and cap.info.outer is not None:
                o = cap.info.outer
                tunnel = {"src": o.src, "dst": o.dst, "vni": cap.info.vni, "port": o.dport}
                path.tunnel = path.tunnel or tunnel
                path.hops.append(
                    H.Hop(
                        label,
                        ns,
                        H.TUNNEL,
                        H.ENCAPSULATED,
                        f"{oif}: outer {o.src} -> {o.dst} udp/{o.dport} vni {cap.info.vni}",
                        interface=f"{oif} -> eth0",
                        tunnel=tunnel,
                    )
                )
            else:
                path.hops.append(
                    H.Hop(
                        label, ns, H.TUNNEL, H.ENCAPSULATED, f"{oif} (no outer copy captured)", interface=oif
                    )
                )
    return False
