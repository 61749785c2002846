"""EndpointSlice controller (kubernetes pkg/controller/endpointslice and staging endpointslice
reconciler/utils; our own code).

For every Service with a selector: the pods it selects that have an IP and have not finished (terminating
pods included, as the reconciler does) become endpoints. Conditions as podToEndpoint: serving = pod Ready,
terminating = deletionTimestamp set, ready = publishNotReadyAddresses or (serving and not terminating).
Ports are resolved per pod (findPort): a named targetPort is looked up among the pod's container ports with
the same protocol; a pod without it contributes no endpoint for that port. Endpoints are grouped by their
resolved port set, one slice per group (at most 100 endpoints each), named `<service>-<5 chars>`, labelled
kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by, owned by the Service. Headless
services get slices too; pods with hostname and subdomain == service name carry their hostname.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.model.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from netsim.store import Compacted

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS = 100
ACTOR = "controller/endpointslice"


def resolve_target_port(pod: dict[str, Any], target: int | str, protocol: str) -> int | None:
    if isinstance(target, int):
        return target
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == protocol:
                return p["containerPort"]
    return None


def endpoint_ports(svc: dict[str, Any], pod: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        proto = sp.get("protocol", "TCP")
        port = resolve_target_port(pod, sp.get("targetPort", sp["port"]), proto)
        if port is None:
            continue
        ep = {"name": sp.get("name") or "", "protocol": proto, "port": port}
        if sp.get("appProtocol"):
            ep["appProtocol"] = sp["appProtocol"]
        out.append(ep)
    return out


def pod_endpoint(svc: dict[str, Any], pod: dict[str, Any], node: dict[str, Any] | None) -> dict[str, Any]:
    serving = o.is_ready(pod)
    terminating = o.is_terminating(pod)
    ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    ep: dict[str, Any] = {"addresses": [pod["status"]["podIP"]],
                          "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                          "targetRef": {"kind": "Pod", "namespace": o.namespace(pod), "name": o.name(pod),
                                        "uid": o.uid(pod)}}
    if o.node_name(pod):
        ep["nodeName"] = o.node_name(pod)
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == o.name(svc):
        ep["hostname"] = spec["hostname"]
    zone = o.labels(node).get("topology.kubernetes.io/zone") if node else None
    if zone:
        ep["zone"] = zone
        if (svc.get("spec") or {}).get("trafficDistribution") == "PreferClose":
            # The EndpointSlice controller's PreferClose heuristic (k8s.io/endpointslice trafficdist
            # preferCloseHeuristic): every endpoint with a zone is hinted for its own zone; one without a
            # zone gets no hint, which makes kube-proxy ignore the hints of the whole Service.
            ep["hints"] = {"forZones": [{"name": zone}]}
    return ep


def selected_pods(svc: dict[str, Any], snap: Snapshot) -> list[dict[str, Any]]:
    """The pods of the Service's namespace its selector matches, looked up through the label index of one of
    its selector's labels (not a scan of every pod per Service)."""
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not selector:
        return []
    k0 = min(selector)
    return [p for p in snap.labelled("Pod", o.namespace(svc), k0, selector[k0])
            if all(o.labels(p).get(k) == v for k, v in selector.items())]


def desired_groups(svc: dict[str, Any], snap: Snapshot) -> dict[str, tuple[list, list]]:
    """port-set key -> (ports, endpoints) for the pods the Service selects."""
    groups: dict[str, tuple[list, list]] = {}
    for pod in selected_pods(svc, snap):
        if o.is_terminal(pod) or not (pod.get("status") or {}).get("podIP"):
            continue
        ports = endpoint_ports(svc, pod)
        k = json.dumps(ports, sort_keys=True)
        groups.setdefault(k, (ports, []))[1].append(
            pod_endpoint(svc, pod, snap.get("Node", None, o.node_name(pod) or "")))
    for _, eps in groups.values():
        eps.sort(key=lambda e: (e["addresses"][0], e["targetRef"]["name"]))
    return groups


def reconcile_service_slices(svc: dict[str, Any], snap: Snapshot, ctx: Context,
                             taken: set[str] | None = None) -> list[Action]:
    """The writes that make the Service's slices match its pods. `taken`: the slice names in use in its
    namespace (kept by the caller across Services of one pass; computed here when not given)."""
    ns = o.namespace(svc)
    existing = [s for s in snap.labelled("EndpointSlice", ns, SERVICE_NAME_LABEL, o.name(svc))
                if o.labels(s).get(MANAGED_BY_LABEL) == CONTROLLER_NAME]
    if not (svc.get("spec") or {}).get("selector") or o.is_terminating(svc):
        return [Action("delete", s) for s in existing]
    wanted: list[tuple[list, list]] = []
    for ports, eps in desired_groups(svc, snap).values():
        for i in range(0, max(len(eps), 1), MAX_ENDPOINTS):
            wanted.append((ports, eps[i:i + MAX_ENDPOINTS]))
    if not wanted:
        wanted = [([], [])]  # an empty slice says "no endpoints" rather than "not reconciled yet"
    by_ports: dict[str, list[dict]] = defaultdict(list)
    for s in sorted(existing, key=o.creation_order):
        by_ports[json.dumps(s.get("ports") or [], sort_keys=True)].append(s)
    labels = {**o.labels(svc), SERVICE_NAME_LABEL: o.name(svc), MANAGED_BY_LABEL: CONTROLLER_NAME}
    actions: list[Action] = []
    if taken is None:
        taken = snap.names("EndpointSlice", ns)
    for ports, eps in wanted:
        pool = by_ports.get(json.dumps(ports, sort_keys=True))
        if pool:
            cur = pool.pop(0)
            if cur.get("endpoints") == eps and o.labels(cur) == labels:
                continue
            new = copy.deepcopy(cur)
            new["endpoints"] = eps
            new["metadata"]["labels"] = labels
            actions.append(Action("update", new, _event(svc, new, ctx)))
            continue
        slice_name = o.generate_name(o.name(svc) + "-", ctx.rng, taken)
        taken.add(slice_name)
        new = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": slice_name, "namespace": ns, "labels": labels,
                            "ownerReferences": [o.owner_reference(svc)]},
               "addressType": "IPv4", "endpoints": eps, "ports": ports}
        actions.append(Action("create", new, _event(svc, new, ctx)))
    for leftover in by_ports.values():
        actions += [Action("delete", s) for s in leftover]
    return actions


def _event(svc: dict[str, Any], sl: dict[str, Any], ctx: Context) -> Event:
    eps = sl["endpoints"]
    ready = sum(1 for e in eps if e["conditions"]["ready"])
    addrs = ",".join(e["addresses"][0] for e in eps) or "none"
    return Event(ctx.now, ACTOR, o.ref(svc), "EndpointsUpdated",
                 f"{o.name(sl)}: {ready}/{len(eps)} ready ({addrs})")


@dataclass
class SliceMemory:
    """What the controller keeps between passes (ctx.memory), as upstream's controller keeps its queue and
    its endpointSliceTracker: the change-log position it has reconciled up to, the pods each Service's
    slices hold (so a pod that left a Service through a label change still requeues it: upstream compares a
    pod's old and new labels in onPodUpdate), and each node's zone (endpoints carry it)."""

    rv: int | None = None
    members: dict[str, set[str]] = field(default_factory=dict)  # service key -> pod keys it selects
    member_of: dict[str, set[str]] = field(default_factory=dict)  # pod key -> service keys selecting it

    def set_members(self, svc_key: str, pods: set[str]) -> None:
        for p in self.members.pop(svc_key, set()) - pods:
            svcs = self.member_of.get(p)
            if svcs is not None:
                svcs.discard(svc_key)
                if not svcs:
                    del self.member_of[p]
        if pods:
            self.members[svc_key] = pods
            for p in pods:
                self.member_of.setdefault(p, set()).add(svc_key)
    zones: dict[str, str | None] = field(default_factory=dict)  # node name -> topology zone label
    reconciled: int = 0  # Services reconciled in the last pass (for tests and benchmarks)
    # --endpointslice-updates-batch-period: Services whose pods changed, and when their sync is due
    pending: dict[tuple[str, str], float] = field(default_factory=dict)


WATCH_KINDS = ("Service", "EndpointSlice", "Pod", "Node")
ZONE_LABEL = "topology.kubernetes.io/zone"


class _SelectorIndex:
    """Services per namespace by one (key, value) of their selector, built on first use in a pass, so that
    finding the Services a pod belongs to (upstream GetPodServiceMemberships) tries only those selecting on
    one of the pod's labels, not every Service of the namespace."""

    def __init__(self, snap: Snapshot):
        self.snap = snap
        self._by_ns: dict[str | None, dict[tuple[str, str], list[dict[str, Any]]]] = {}

    def selecting(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        ns, labels = o.namespace(pod), o.labels(pod)
        index = self._by_ns.get(ns)
        if index is None:
            index = self._by_ns[ns] = defaultdict(list)
            for svc in self.snap.of("Service", ns):
                selector = (svc.get("spec") or {}).get("selector") or {}
                if selector:
                    k0 = min(selector)
                    index[(k0, selector[k0])].append(svc)
        out = []
        for item in labels.items():
            for svc in index.get(item, ()):
                if all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()):
                    out.append(svc)
        return out


def _affected(changes: list[Any], snap: Snapshot, mem: SliceMemory,
              direct: set[tuple[str, str]] | None = None) -> set[tuple[str, str]] | None:
    """The Services (namespace, name) a batch of changes can concern, as upstream's event handlers queue
    them (pkg/controller/endpointslice/endpointslice_controller.go: onServiceUpdate, onPodUpdate via
    GetPodServiceMemberships of the old and new pod, onEndpointSliceUpdate via the service-name label).
    None: a node's zone changed, which can concern any Service (reconcile all). `direct` collects those
    queued by a change of their Service or slices (not of their pods)."""
    out: set[tuple[str, str]] = set()
    pods: dict[str, dict[str, Any]] = {}
    for c in changes:
        if c.kind == "Service":
            out.add((c.namespace or "default", c.name))
            if direct is not None:
                direct.add((c.namespace or "default", c.name))
        elif c.kind == "EndpointSlice":
            svc_name = o.labels(c.object).get(SERVICE_NAME_LABEL)
            if svc_name:
                out.add((c.namespace or "default", svc_name))
                if direct is not None:
                    direct.add((c.namespace or "default", svc_name))
        elif c.kind == "Pod":
            pods[f"{c.namespace}/{c.name}"] = c.object
        elif c.kind == "Node":
            zone = o.labels(c.object).get(ZONE_LABEL) if c.type != "DELETED" else None
            if mem.zones.get(c.name) != zone:
                return None
    if pods:
        index = _SelectorIndex(snap)
        for pod_key, pod in pods.items():
            ns = o.namespace(pod)
            current = snap.get("Pod", ns, o.name(pod)) or pod
            for svc in index.selecting(current):
                out.add((ns or "default", o.name(svc)))
            for svc_key in mem.member_of.get(pod_key, ()):
                svc_ns, _, svc_name = svc_key.partition("/")
                out.add((svc_ns, svc_name))
    return out


def reconcile_endpointslices(snap: Snapshot, ctx: Context) -> list[Action]:
    """Every Service's slices on the first pass (or after the change log was compacted past us); after
    that only the Services whose Service, pods or slices changed since the previous pass (upstream's
    controller works a queue of Service keys fed by its informers, syncService per key)."""
    mem = ctx.memory.get(MEMORY_KEY) if ctx.feed is not None else None
    if not isinstance(mem, SliceMemory):
        mem = SliceMemory()
    now_rv = ctx.feed.current_rv() if ctx.feed is not None else None
    affected: set[tuple[str, str]] | None = None
    direct: set[tuple[str, str]] = set()
    if ctx.feed is not None and mem.rv is not None:
        try:
            affected = _affected(ctx.feed.changes_of(WATCH_KINDS, mem.rv), snap, mem, direct)
        except Compacted:
            affected = None
    batch = ctx.config.endpointslice_batch_period
    if affected is not None and (batch > 0 or mem.pending):
        # --endpointslice-updates-batch-period (upstream default 0: off): a pod change queues its Services
        # batchPeriod later (queue.AddAfter in onPodUpdate/addPod/deletePod), so the pod changes of that
        # period are synced together; a change of the Service or its slices queues it at once (queue.Add).
        for key in affected - direct:
            mem.pending.setdefault(key, ctx.now + batch)
        due = {k for k, t in mem.pending.items() if t <= ctx.now} | direct
        for k in due:
            mem.pending.pop(k, None)
        affected = due
    if affected is None:
        mem.pending = {}
        services = snap.of("Service")
        mem.members, mem.member_of = {}, {}
        mem.zones = {o.name(n): o.labels(n).get(ZONE_LABEL) for n in snap.of("Node")}
    else:
        services = [s for ns, name in sorted(affected) if (s := snap.get("Service", ns, name)) is not None]
        for ns, name in affected:
            mem.set_members(f"{ns}/{name}", set())
    actions: list[Action] = []
    taken: dict[str | None, set[str]] = {}
    for svc in services:
        if (svc.get("spec") or {}).get("type") == "ExternalName":
            continue
        ns = o.namespace(svc)
        if ns not in taken:
            taken[ns] = snap.names("EndpointSlice", ns)
        actions += reconcile_service_slices(svc, snap, ctx, taken[ns])
        if (svc.get("spec") or {}).get("selector"):
            mem.set_members(o.key(svc), {f"{o.namespace(p)}/{o.name(p)}" for p in selected_pods(svc, snap)})
    mem.reconciled = len(services)
    if ctx.feed is not None:
        mem.rv = now_rv
        ctx.memory[MEMORY_KEY] = mem
    return actions


MEMORY_KEY = "endpointslice"
