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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.model.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from netsim.model.errors import NetsimError
from netsim.model.node import Node
from netsim.model.pod import Pod
from netsim.model.service import Service
from netsim.store import Compacted

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS = 100
ACTOR = "controller/endpointslice"
ZONE_LABEL = "topology.kubernetes.io/zone"


def resolve_target_port(pod: Pod, target: int | str, protocol: str) -> int | None:
    """findPort (pkg/api/v1/pod/util.go FindPort): a number as it is, a name looked up among the pod's
    container ports of the same protocol."""
    if isinstance(target, int):
        return target
    for c in pod.spec.containers:
        for p in c.ports:
            if p.name == target and p.protocol == protocol:
                return p.container_port
    return None


def endpoint_ports(svc: Service, pod: Pod) -> list[dict[str, Any]]:
    out = []
    for sp in svc.ports:
        port = resolve_target_port(pod, sp.target_port, sp.protocol)
        if port is None:
            continue
        ep: dict[str, Any] = {"name": sp.name or "", "protocol": sp.protocol, "port": port}
        if sp.app_protocol:
            ep["appProtocol"] = sp.app_protocol
        out.append(ep)
    return out


def pod_endpoint(svc: Service, pod: Pod, node: Node | None) -> dict[str, Any]:
    """podToEndpoint, from the typed Service, Pod and Node; the endpoint is a dict (it is written)."""
    serving = ps.ready(pod)
    terminating = ps.terminating(pod)
    ready = svc.publish_not_ready_addresses or (serving and not terminating)
    ep: dict[str, Any] = {"addresses": [pod.status.pod_ip],
                          "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                          "targetRef": {"kind": "Pod", "namespace": pod.meta.namespace, "name": pod.meta.name,
                                        "uid": pod.meta.uid}}
    if pod.spec.node_name:
        ep["nodeName"] = pod.spec.node_name
    if pod.spec.hostname and pod.spec.subdomain == svc.meta.name:
        ep["hostname"] = pod.spec.hostname
    zone = node.labels.get(ZONE_LABEL) if node else None
    if zone:
        ep["zone"] = zone
        if svc.traffic_distribution == "PreferClose":
            # The EndpointSlice controller's PreferClose heuristic (k8s.io/endpointslice trafficdist
            # preferCloseHeuristic): every endpoint with a zone is hinted for its own zone; one without a
            # zone gets no hint, which makes kube-proxy ignore the hints of the whole Service.
            ep["hints"] = {"forZones": [{"name": zone}]}
    return ep


def selected_pods(svc: Service, snap: Snapshot) -> list[Pod]:
    """The pods of the Service's namespace its selector matches (typed, from the store's parse cache), looked
    up through the label index of one of its selector's labels (not a scan of every pod per Service)."""
    selector = svc.selector
    if not selector:
        return []
    k0 = min(selector)
    out = []
    for raw in snap.labelled("Pod", svc.meta.namespace, k0, selector[k0]):
        try:
            pod = snap.decode(raw)
        except NetsimError:
            continue
        if all(pod.meta.labels.get(k) == v for k, v in selector.items()):
            out.append(pod)
    return out


def _nodes(snap: Snapshot) -> dict[str, Node]:
    return {n.name: n for n in snap.typed("Node")}


def desired_groups(svc: Service, snap: Snapshot, nodes: dict[str, Node] | None = None) -> dict[str, tuple[list, list]]:
    """port-set key -> (ports, endpoints) for the pods the Service selects."""
    nodes = _nodes(snap) if nodes is None else nodes
    groups: dict[str, tuple[list, list]] = {}
    for pod in selected_pods(svc, snap):
        if ps.terminal(pod) or not pod.status.pod_ip:
            continue
        ports = endpoint_ports(svc, pod)
        k = json.dumps(ports, sort_keys=True)
        groups.setdefault(k, (ports, []))[1].append(pod_endpoint(svc, pod, nodes.get(pod.spec.node_name or "")))
    for _, eps in groups.values():
        eps.sort(key=lambda e: (e["addresses"][0], e["targetRef"]["name"]))
    return groups


def _managed(snap: Snapshot, svc: Service) -> list[dict[str, Any]]:
    """The Service's slices this controller manages, as stored (the controller's own writes: it compares
    them with what it would write, and updates or deletes them)."""
    return [s for s in snap.labelled("EndpointSlice", svc.meta.namespace, SERVICE_NAME_LABEL, svc.meta.name)
            if o.labels(s).get(MANAGED_BY_LABEL) == CONTROLLER_NAME]


def reconcile_service_slices(svc: Service, snap: Snapshot, ctx: Context, taken: set[str] | None = None,
                             nodes: dict[str, Node] | None = None) -> list[Action]:
    """The writes that make the Service's slices match its pods. `taken`: the slice names in use in its
    namespace (kept by the caller across Services of one pass; computed here when not given); `nodes`: the
    typed Nodes by name (the caller's, for a pass over many Services)."""
    existing = _managed(snap, svc)
    if not svc.selector or ps.terminating(svc):
        return [Action("delete", s) for s in existing]
    wanted: list[tuple[list, list]] = []
    for ports, eps in desired_groups(svc, snap, nodes).values():
        for i in range(0, max(len(eps), 1), MAX_ENDPOINTS):
            wanted.append((ports, eps[i:i + MAX_ENDPOINTS]))
    if not wanted:
        wanted = [([], [])]  # an empty slice says "no endpoints" rather than "not reconciled yet"
    labels = {**svc.meta.labels, SERVICE_NAME_LABEL: svc.meta.name, MANAGED_BY_LABEL: CONTROLLER_NAME}
    if taken is None:
        taken = snap.names("EndpointSlice", svc.meta.namespace)
    return _slice_writes(svc, existing, wanted, labels, taken, ctx)


def _slice_writes(svc: Service, existing: list[dict[str, Any]], wanted: list[tuple[list, list]],
                  labels: dict[str, str], taken: set[str], ctx: Context) -> list[Action]:
    """Creates, updates and deletes that turn the stored slices into the wanted ones (slices are matched
    by their port set, oldest first; the write edge: stored slices are compared and rewritten as dicts)."""
    by_ports: dict[str, list[dict]] = defaultdict(list)
    for s in sorted(existing, key=o.creation_order):
        by_ports[json.dumps(s.get("ports") or [], sort_keys=True)].append(s)
    actions: list[Action] = []
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
        slice_name = o.generate_name(svc.meta.name + "-", ctx.rng, taken)
        taken.add(slice_name)
        new = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": slice_name, "namespace": svc.meta.namespace, "labels": labels,
                            "ownerReferences": [ps.owner_reference(svc)]},
               "addressType": "IPv4", "endpoints": eps, "ports": ports}
        actions.append(Action("create", new, _event(svc, new, ctx)))
    for leftover in by_ports.values():
        actions += [Action("delete", s) for s in leftover]
    return actions


def _event(svc: Service, sl: dict[str, Any], ctx: Context) -> Event:
    eps = sl["endpoints"]
    ready = sum(1 for e in eps if e["conditions"]["ready"])
    addrs = ",".join(e["addresses"][0] for e in eps) or "none"
    return Event(ctx.now, ACTOR, ps.ref(svc), "EndpointsUpdated",
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


class _SelectorIndex:
    """Services per namespace by one (key, value) of their selector (typed Services from the parse cache),
    built on first use in a pass, so that finding the Services a pod belongs to (upstream
    GetPodServiceMemberships) tries only those selecting on one of the pod's labels, not every Service of
    the namespace."""

    def __init__(self, snap: Snapshot):
        self.snap = snap
        self._by_ns: dict[str | None, dict[tuple[str, str], list[Service]]] = {}

    def selecting(self, ns: str | None, labels: Mapping[str, str]) -> list[Service]:
        index = self._by_ns.get(ns)
        if index is None:
            index = self._by_ns[ns] = defaultdict(list)
            for svc in self.snap.typed("Service", ns):
                if svc.selector:
                    k0 = min(svc.selector)
                    index[(k0, svc.selector[k0])].append(svc)
        out = []
        for item in labels.items():
            for svc in index.get(item, ()):
                if all(labels.get(k) == v for k, v in svc.selector.items()):
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
            for svc in index.selecting(ns, o.labels(current)):
                out.add((ns or "default", svc.meta.name))
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
        services = snap.typed("Service")
        mem.members, mem.member_of = {}, {}
        mem.zones = {n.name: n.labels.get(ZONE_LABEL) for n in snap.typed("Node")}
    else:
        services = [got[0] for ns, name in sorted(affected) if (got := snap.typed_get("Service", ns, name)) is not None]
        for ns, name in affected:
            mem.set_members(f"{ns}/{name}", set())
    nodes = _nodes(snap) if services else {}
    actions: list[Action] = []
    taken: dict[str | None, set[str]] = {}
    for svc in services:
        if svc.type == "ExternalName":
            continue
        ns = svc.meta.namespace
        if ns not in taken:
            taken[ns] = snap.names("EndpointSlice", ns)
        actions += reconcile_service_slices(svc, snap, ctx, taken[ns], nodes)
        if svc.selector:
            mem.set_members(svc.meta.key, {p.meta.key for p in selected_pods(svc, snap)})
    mem.reconciled = len(services)
    if ctx.feed is not None:
        mem.rv = now_rv
        ctx.memory[MEMORY_KEY] = mem
    return actions


MEMORY_KEY = "endpointslice"
