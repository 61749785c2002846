"""`netsim verify`: the NetworkPolicy model's truth table beside what the kernel actually does.

The expected side is netsim.policy.model (the Kubernetes spec); the observed side is the probe engine on
the real data plane. Both are laid out as cyclonus-style matrices (rows sources, columns destinations,
`.` allowed, `X` blocked) per port and protocol, and every cell where they disagree is listed with the
model's reason and the probe's outcome. Store objects are read through `inputs_from_store`, which the
daemon's felix agent uses too, so model and enforcement see the same pods and labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane import whatif
from netsim.model.errors import NetsimError
from netsim.model.networkpolicy import NetworkPolicy
from netsim.model.service import Service
from netsim.policy.model import NamespaceInfo, PodInfo, PolicyModel, Verdict
from netsim.policy.stored import decode_policy


def inputs_from_store(store: Any, *, with_whatifs: bool = False,
                      on_invalid: Callable[[dict, Exception], None] | None = None,
                      ) -> tuple[list[NamespaceInfo], list[PodInfo], list[NetworkPolicy]]:
    """Namespaces, running pods with IPs, and NetworkPolicies as the policy model and felix take them.
    `with_whatifs` (felix): the live policies overlaid with every what-if's (netsim.controlplane.whatif).
    With `on_invalid`, a stored object that does not parse is handed to it and left out (the daemon
    reports it and programs the rest) instead of raising."""
    namespaces = [NamespaceInfo(n.meta.name, n.meta.labels) for n in store.typed_list("Namespace")]
    pods = []
    for p in store.list("Pod"):
        try:
            typed = store.decode(p)  # the parse cache's typed Pod, once per resourceVersion
        except NetsimError as e:
            if on_invalid is None:
                raise
            on_invalid(p, e)
            continue
        # hostNetwork pods are the node as far as policy goes: nothing polices them (NetworkPolicy spec).
        if not typed.status.pod_ip or ps.terminal(typed) or typed.spec.host_network:
            continue
        pods.append(PodInfo.of(typed))  # the one pod view (netsim.model.podview)
    live = store.list("NetworkPolicy")
    raw = live
    if with_whatifs:
        raw = whatif.overlay(live, store.list(whatif.KIND, whatif.NAMESPACE))
    stored = {(o.namespace(x) or "default", o.name(x)): x for x in live}
    policies = []
    for x in raw:
        try:
            # Stored versions through the store's parse cache (once per process); what-ifs on their own.
            mine = stored.get((o.namespace(x) or "default", o.name(x)))
            policies.append(decode_policy(store, x, stored=mine is not None and (x is mine or x == mine)))
        except Exception as e:
            if on_invalid is None:
                raise
            on_invalid(x, e)
    return namespaces, pods, policies


def model_from_store(store: Any, extra_policies: Iterable[NetworkPolicy] = ()) -> PolicyModel:
    namespaces, pods, policies = inputs_from_store(store)
    keyed = {p.key: p for p in policies}
    for p in extra_policies:  # what-if: NEW.yaml replaces policies of the same name
        keyed[p.key] = p
    return PolicyModel(namespaces, pods, list(keyed.values()))


@dataclass
class Cell:
    source: str
    destination: str
    port: int
    protocol: str
    expected: bool
    observed: bool | None  # None: not probed
    outcome: str = ""
    verdict: Verdict | None = None
    # Node and host sources: the source address the pod should see (netsim.policy.paths) and the one the
    # workload server reported; a connection from another address than modelled is a disagreement too.
    expected_client: str | None = None
    observed_client: str | None = None
    judged: Any = field(default=None, repr=False, compare=False)  # the source endpoint the model judged

    @property
    def address_agrees(self) -> bool:
        return self.expected_client is None or self.observed_client is None \
            or self.expected_client == self.observed_client

    @property
    def agrees(self) -> bool:
        return (self.observed is None or self.observed == self.expected) and self.address_agrees


@dataclass
class VerifyReport:
    cells: list[Cell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def disagreements(self) -> list[Cell]:
        return [c for c in self.cells if not c.agrees]

    @property
    def ok(self) -> bool:
        return not self.disagreements

    def groups(self) -> dict[tuple[int, str], list[Cell]]:
        out: dict[tuple[int, str], list[Cell]] = {}
        for c in self.cells:
            out.setdefault((c.port, c.protocol), []).append(c)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "notes": self.notes,
            "cells": [{"from": c.source, "to": c.destination, "port": c.port, "protocol": c.protocol,
                       "expected": c.expected, "observed": c.observed, "outcome": c.outcome, "agrees": c.agrees,
                       "reason": c.verdict.to_dict() if c.verdict else None,
                       **({"clientIP": {"expected": c.expected_client, "observed": c.observed_client}}
                          if c.expected_client else {})} for c in self.cells],
            "disagreements": len(self.disagreements),
        }


def matrix(cells: Sequence[Cell], which: str) -> str:
    """One truth table as text: `which` is "expected", "observed" or "diff" (`!` marks disagreement)."""
    sources = sorted({c.source for c in cells})
    dests = sorted({c.destination for c in cells})
    index = {(c.source, c.destination): c for c in cells}
    width = max([len(s) for s in sources] + [1])
    header = " " * (width + 1) + " ".join(f"{i:>2}" for i in range(len(dests)))
    lines = [header]
    for s in sources:
        row = []
        for d in dests:
            c = index.get((s, d))
            if c is None:
                row.append(" ")
                continue
            if which == "expected":
                row.append("." if c.expected else "X")
            elif which == "observed":
                row.append("?" if c.observed is None else "." if c.observed else "X")
            else:
                row.append("!" if not c.agrees else "." if c.expected else "X")
        lines.append(f"{s:<{width}} " + " ".join(f"{x:>2}" for x in row))
    lines.append("columns: " + ", ".join(f"{i}={d}" for i, d in enumerate(dests)))
    return "\n".join(lines)


def build_cells(model: PolicyModel, pods: Mapping[str, PodInfo], results: Iterable[Any]) -> list[Cell]:
    """Pair each probe result with the model's verdict for the same source pod, destination pod, port."""
    cells = []
    for r in results:
        p = r.probe
        src, dst = pods.get(p.source), pods.get(p.to or "")
        if src is None or dst is None:
            continue
        v = model.verdict(src, dst, p.port, p.protocol)
        cells.append(Cell(p.source, p.to or "", p.port, p.protocol, v.allowed, r.connected, r.outcome, v))
    return cells


def service_backends(model: PolicyModel, svc: Service, port: int,
                     protocol: str = "TCP") -> list[tuple[PodInfo, int]]:
    """The pods behind Service port `port`/`protocol` as (pod, target port), the way the EndpointSlice
    controller picks them: the Service's selector over pods of its namespace, and a named targetPort looked
    up per pod among its container ports with the same name and protocol (kubernetes
    pkg/api/v1/pod/util.go FindPort, as netsim.controlplane.endpointslice.resolve_target_port); a pod
    without that port is no endpoint of it. A Service without a selector has no pods here. `svc` is the
    typed Service (the store's parse cache's)."""
    sport = next((p for p in svc.ports if p.port == port and p.protocol == protocol), None)
    selector = svc.selector
    if sport is None or not selector:
        return []
    ns = svc.meta.namespace or "default"
    target = sport.target_port
    out = []
    for pod in model.pods:
        if pod.namespace != ns or any(pod.labels.get(k) != v for k, v in selector.items()):
            continue
        tport = target if isinstance(target, int) else pod.named_port(target, protocol)
        if tport is not None:
            out.append((pod, int(tport)))
    return out
