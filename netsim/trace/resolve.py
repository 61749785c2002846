"""What `netsim trace SRC DST[:PORT]` means: the source namespace and address, the destination address and
port, and what the destination names (a pod, a Service, a node, an external host, a bare IP).

Parsing reuses the probe selectors (`netsim.model.targets`: `ns/pod`, `node/NAME`, `host/NAME`,
`svc/NS/NAME`, an IP, `IP:PORT`); `split_port` takes `svc/ns/web:80` apart. Resolution against a live
cluster goes through `netsim.api.Cluster`. Errors a user can make raise UsageError (exit code 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netsim.model import targets as sel
from netsim.model.errors import UsageError

PROTOCOLS = ("TCP", "UDP", "SCTP", "ICMP")


@dataclass(frozen=True)
class TraceSource:
    label: str
    kind: str  # pod | node | host
    netns: str
    ip: str
    node: str | None  # the node a pod runs on, or the node itself; None for external hosts
    pod: str | None = None  # ns/name


@dataclass(frozen=True)
class TraceDestination:
    label: str
    kind: str  # pod | service | node | host | ip
    ip: str
    port: int | None
    protocol: str
    pod: str | None = None  # ns/name when the destination is a pod
    service: str | None = None  # ns/name when it is a Service (its cluster IP)


def parse_protocol(protocol: str | None) -> str:
    p = (protocol or "TCP").upper()
    if p not in PROTOCOLS:
        raise UsageError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    return p


def resolve_source(cluster: Any, text: str) -> TraceSource:
    try:
        s = sel.parse_source(text)
    except sel.SelectorError as exc:
        raise UsageError(f"trace source: {exc}") from None
    if s.is_wildcard:
        raise UsageError(f"a trace starts at one pod, node or host, not {s.text}")
    [ep] = cluster.sources(s)
    if s.kind == sel.POD:
        node = cluster.store.decode(ep.pod).spec.node_name if ep.pod else None  # the parse cache's typed Pod
        return TraceSource(ep.label, "pod", ep.netns or "", ep.ip or "", node, ep.label)
    if s.kind == sel.NODE:
        return TraceSource(ep.label, "node", ep.netns or "", ep.ip or "", s.name)
    return TraceSource(ep.label, "host", ep.netns or "", ep.ip or "", None)


def resolve_destination(cluster: Any, text: str, port: int | None, protocol: str) -> TraceDestination:
    """`text` may carry `:PORT`; `port` (from --port or the scenario) must then agree with it."""
    protocol = parse_protocol(protocol)
    try:
        head, port_in = sel.split_port(text)
        t = sel.parse_target(head)
    except sel.SelectorError as exc:
        raise UsageError(f"trace destination: {exc}") from None
    if port is not None and port_in is not None and port != port_in:
        raise UsageError(f"trace destination {text}: port {port_in} conflicts with --port {port}")
    port = port if port is not None else port_in
    if t.is_wildcard:
        raise UsageError(f"a trace goes to one destination, not {t.text}")
    if t.kind == sel.SERVICE:
        svc = cluster.store.decode(cluster.service(t.namespace, t.name))  # the parse cache's typed Service
        ip = svc.cluster_ip
        if not ip or ip == "None":
            raise UsageError(f"Service {t.namespace}/{t.name} has no cluster IP (headless?)")
        ports = svc.ports
        if port is None and protocol != "ICMP":
            if len(ports) != 1:
                raise UsageError(
                    f"Service {t.namespace}/{t.name} has several ports; say which: {t.text}:PORT"
                )
            port = ports[0].port
        return TraceDestination(t.text, "service", ip, port, protocol, service=f"{t.namespace}/{t.name}")
    if port is None and protocol != "ICMP":
        raise UsageError(f"say which port to trace to: {text}:PORT (or --protocol ICMP)")
    if t.kind in (sel.IP, sel.IP_PORT):
        return TraceDestination(t.ip or "", "ip", t.ip or "", port, protocol)
    [ep] = cluster.sources(t)
    kind = {sel.POD: "pod", sel.NODE: "node", sel.HOST: "host"}[t.kind]
    return TraceDestination(
        ep.label, kind, ep.ip or "", port, protocol, pod=ep.label if kind == "pod" else None
    )
