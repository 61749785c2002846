"""Stale UDP conntrack entries of Services (pure): which flows kube-proxy deletes after a sync.

A UDP flow through a Service is a conntrack entry that keeps the DNAT of its first datagram. When the
endpoint it was sent to stops serving, the client's later datagrams on the same 5-tuple would keep going
to it until the entry times out. kube-proxy therefore reconciles after each sync
(kubernetes pkg/proxy/conntrack/cleanup.go, CleanStaleEntries): for every UDP service port that has at
least one serving endpoint, an entry whose original destination is one of the port's frontends (ClusterIP,
LoadBalancer IPs, external IPs : port) or whose original destination port is its NodePort, and whose
reply source is not a serving endpoint IP, is deleted. Services without serving endpoints are left alone.

Here the entries come from `conntrack -L -p udp` text and the deletions are `conntrack -D` argument lists,
so the node agent only runs commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from netsim.parsers.conntrack import iter_entries
from netsim.proxy.model import Endpoint, ServicePort


@dataclass(frozen=True)
class Flow:
    """One conntrack entry: the original direction's destination and the reply direction's source."""

    orig_dst: str
    orig_dport: int
    reply_src: str


def parse_flows(text: str) -> list[Flow]:
    """Entries of `conntrack -L -p udp`, read by the one conntrack text reader (netsim.parsers.conntrack)."""
    out = []
    for f in iter_entries(text):
        dport = f.original.get("dport", "")
        if dport.isdigit() and "dst" in f.original:
            out.append(Flow(f.original["dst"], int(dport), f.reply["src"]))
    return out


@dataclass(frozen=True)
class UdpFrontends:
    """Serving endpoint IPs per UDP frontend: (ip, port) for service IPs, and per NodePort."""

    by_ip_port: Mapping[tuple[str, int], frozenset[str]]
    by_node_port: Mapping[int, frozenset[str]]

    def __bool__(self) -> bool:
        return bool(self.by_ip_port or self.by_node_port)


def udp_frontends(services: Iterable[ServicePort],
                  endpoints: Mapping[tuple[str, str], Sequence[Endpoint]]) -> UdpFrontends:
    by_ip: dict[tuple[str, int], frozenset[str]] = {}
    by_np: dict[int, frozenset[str]] = {}
    for sp in services:
        if sp.protocol != "UDP" or sp.headless:
            continue
        serving = frozenset(e.ip for e in endpoints.get(sp.key, ()) if e.serving)
        if not serving:
            continue  # upstream leaves services without endpoints alone
        for ip in (sp.cluster_ip, *sp.load_balancer_ips, *sp.external_ips):
            if ip:
                by_ip[(ip, sp.port)] = serving
        if sp.node_port:
            by_np[sp.node_port] = serving
    return UdpFrontends(by_ip, by_np)


def stale_deletions(flows: Iterable[Flow], fronts: UdpFrontends) -> list[list[str]]:
    """`conntrack -D` argument lists for the stale flows, one per distinct filter, in a stable order."""
    out: set[tuple[str, ...]] = set()
    for f in flows:
        serving = fronts.by_ip_port.get((f.orig_dst, f.orig_dport))
        if serving is not None and f.reply_src not in serving:
            out.add(("-p", "udp", "--orig-dst", f.orig_dst, "--orig-port-dst", str(f.orig_dport),
                     "--reply-src", f.reply_src))
        serving = fronts.by_node_port.get(f.orig_dport)
        if serving is not None and f.reply_src not in serving:
            out.add(("-p", "udp", "--orig-port-dst", str(f.orig_dport), "--reply-src", f.reply_src))
    return [list(x) for x in sorted(out)]
