"""`netsim trace` as a function: simulate, observe, compare.

    from netsim.api import Cluster
    from netsim.trace.api import trace
    report = trace(Cluster("demo"), "default/client", "svc/default/web", 80, "TCP")
    print(report.verdict, report.agree, [h.text() for h in report.observed.hops])

`trace_for_scenario` is the dict the scenario runner asserts on (netsim/scenario/api.py `trace`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from netsim.trace import hops as H
from netsim.trace.observe.cluster import observe_path
from netsim.trace.observe.facts import from_cluster
from netsim.trace.observe.tag import TraceTag
from netsim.trace.report.compare import disagreements, pick_branch
from netsim.trace.report.observed import LooseTag, build_observed
from netsim.trace.resolve import TraceDestination, TraceSource, resolve_destination, resolve_source
from netsim.trace.simulate.walk import simulate
from netsim.trace.view import ClusterView


@dataclass
class TraceReport:
    source: TraceSource
    destination: TraceDestination
    sport: int
    branches: list[H.Path]
    observed: H.Path | None
    disagreements: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    observe_elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def simulated(self) -> H.Path | None:
        return pick_branch(self.branches, self.observed)

    @property
    def verdict(self) -> str:
        if self.observed is not None:
            return self.observed.verdict
        return self.simulated.verdict if self.simulated else H.VERDICT_UNREACHABLE

    @property
    def agree(self) -> bool:
        return not self.disagreements

    @property
    def policy(self) -> str | None:
        p = (
            self.observed.policy
            if self.observed and self.observed.policy
            else (self.simulated.policy if self.simulated else None)
        )
        return H.policy_key(p)

    @property
    def policies(self) -> list[str]:
        out: list[str] = []
        for path in [self.observed, self.simulated]:
            if path is None:
                continue
            for p in [H.policy_key(path.policy), *path.policies]:
                if p and p not in out:
                    out.append(p)
        return out

    def to_json(self) -> dict[str, Any]:
        sim = self.simulated
        return {
            "source": self.source.label,
            "destination": self.destination.label,
            "destinationIP": self.destination.ip,
            "port": self.destination.port,
            "protocol": self.destination.protocol,
            "sourcePort": self.sport,
            "verdict": self.verdict,
            "policy": self.policy,
            "policies": self.policies,
            "agree": self.agree,
            "disagreements": self.disagreements,
            "simulated": [h.to_json() for h in sim.hops] if sim else [],
            "observed": [h.to_json() for h in self.observed.hops] if self.observed else [],
            "simulatedSummary": _summary(sim),
            "observedSummary": _summary(self.observed),
            "branches": [b.to_json() for b in self.branches],
            "observedRules": self.observed.rules if self.observed else [],
            "elapsedSeconds": round(self.elapsed, 4),
            "observeSeconds": round(self.observe_elapsed, 4),
            "notes": self.notes,
        }


def _summary(p: H.Path | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "verdict": p.verdict,
        "endpoint": p.endpoint,
        "endpointIP": p.endpoint_ip,
        "policy": p.policy,
        "reason": p.reason,
        "masquerade": p.masquerade,
        "tunnel": p.tunnel,
        "answered": p.answered,
        "returned": p.returned,
        "probability": round(p.probability, 6),
    }


def observation_scope(view: ClusterView, source: TraceSource, dest: TraceDestination,
                      branches: Sequence[H.Path], candidates: Sequence[str]) -> set[str]:
    """The namespaces a trace observes: every namespace a simulated branch passes, the source and its
    node, each candidate endpoint (every simulated branch's: a Service's endpoints) and its node,
    and a node or pod destination with its node. A packet the kernel sends elsewhere than the model says
    still shows: its last hop in scope is where the observed path ends, and the paths disagree."""
    scope = {h.netns for b in branches for h in b.hops if h.netns}
    scope.add(source.netns)
    nodes = {source.node} if source.node else set()
    for key in [*candidates, *([dest.pod] if dest.pod else [])]:
        pod = view.pod(key)
        if pod is not None:
            scope.add(pod.netns)
            nodes.add(pod.node)
    if dest.kind == "node":
        nodes.add(view.node_by_ip(dest.ip) or "")
    scope.update(view.node_ns(n) for n in nodes if n in view.node_ips)
    return scope


def trace(
    cluster: Any,
    src: str,
    dst: str,
    port: int | None = None,
    protocol: str | None = "TCP",
    *,
    sport: int | None = None,
    pcap: str | FsPath | None = None,
    observe: bool = True,
    view: ClusterView | None = None,
    timeout: float = 3.0,
) -> TraceReport:
    """Simulate the packet, then (unless `observe=False`) send it and observe it; compare the two."""
    t0 = time.monotonic()
    source = resolve_source(cluster, src)
    dest = resolve_destination(cluster, dst, port, protocol or "TCP")
    rnd = TraceTag.random(dest.protocol.lower())
    tag = LooseTag(rnd.proto, rnd.ip_id, sport if sport is not None else rnd.sport)
    view = view or from_cluster(cluster)
    unwalked: dict[str, float] = {}
    branches = simulate(view, source, dest, tag.sport, unwalked)
    observed = None
    diffs: list[str] = []
    observe_elapsed = 0.0
    notes: list[str] = []
    if observe:
        candidates = [
            b.endpoint
            for b in branches
            if b.endpoint and "/" in b.endpoint and not b.endpoint.startswith(("node/", "host/"))
        ]
        raw = observe_path(
            cluster.kernel, view, source, dest, tag, extra_pods=candidates, pcap=pcap, timeout=timeout,
            scope=observation_scope(view, source, dest, branches, candidates),
        )
        observe_elapsed = raw.elapsed
        if raw.lost:
            notes.append(f"trace events lost (buffer overrun) in {', '.join(raw.lost)}")
        observed = build_observed(view, source, dest, tag, raw)
        diffs = disagreements(branches, observed, frozenset(unwalked))
        if unwalked:
            notes.append(f"{len(unwalked):,} endpoints' branches were not walked (a Service of that many endpoints)")
    return TraceReport(
        source, dest, tag.sport, branches, observed, diffs, time.monotonic() - t0, observe_elapsed, notes
    )


def trace_for_scenario(
    cluster: Any, src: str, dst: str, port: int | None, protocol: str | None
) -> dict[str, Any]:
    """What `netsim.scenario` asserts on: verdict, policy, policies, hops (text), agree."""
    r = trace(cluster, src, dst, port, protocol or "TCP")
    hops = [{"description": h.text(), **h.to_json()} for h in (r.observed.hops if r.observed else [])]
    sim = r.simulated
    return {
        "verdict": r.verdict,
        "policy": r.policy,
        "policies": r.policies,
        "hops": hops,
        "simulated": [h.text() for h in sim.hops] if sim else [],
        "agree": r.agree,
        "disagreements": r.disagreements,
        "endpoint": r.observed.endpoint if r.observed else None,
    }
