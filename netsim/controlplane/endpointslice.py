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
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.model.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL

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


def desired_groups(svc: dict[str, Any], snap: Snapshot) -> dict[str, tuple[list, list]]:
    """port-set key -> (ports, endpoints) for the pods the Service selects."""
    selector = (svc.get("spec") or {}).get("selector") or {}
    groups: dict[str, tuple[list, list]] = {}
    for pod in snap.of("Pod", o.namespace(svc)):
        if not all(o.labels(pod).get(k) == v for k, v in selector.items()):
            continue
        if o.is_terminal(pod) or not (pod.get("status") or {}).get("podIP"):
            continue
        ports = endpoint_ports(svc, pod)
        k = json.dumps(ports, sort_keys=True)
        groups.setdefault(k, (ports, []))[1].append(
            pod_endpoint(svc, pod, snap.get("Node", None, o.node_name(pod) or "")))
    for _, eps in groups.values():
        eps.sort(key=lambda e: (e["addresses"][0], e["targetRef"]["name"]))
    return groups


def reconcile_service_slices(svc: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    ns = o.namespace(svc)
    existing = [s for s in snap.of("EndpointSlice", ns)
                if o.labels(s).get(SERVICE_NAME_LABEL) == o.name(svc)
                and o.labels(s).get(MANAGED_BY_LABEL) == CONTROLLER_NAME]
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


def reconcile_endpointslices(snap: Snapshot, ctx: Context) -> list[Action]:
    actions: list[Action] = []
    for svc in snap.of("Service"):
        if (svc.get("spec") or {}).get("type") == "ExternalName":
            continue
        actions += reconcile_service_slices(svc, snap, ctx)
    return actions
