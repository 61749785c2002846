"""Knative Serving's controllers for a `serving.knative.dev/v1` Service, folded into one pure controller:
what the Service, Configuration, Revision, PodAutoscaler and ServerlessService reconcilers of
knative/serving make of it, in the shape netsim's data plane understands.

For a KnativeService `NAME` at generation G:
- the revision is `NAME-0000G` (pkg/reconciler/configuration/resources/names.go: `<config>-<5 digit
  generation>`), and its Deployment `NAME-0000G-deployment` (pkg/reconciler/revision/resources/names/
  names.go `Deployment`), its pods labelled serving.knative.dev/service, /configuration, /revision and
  /revisionUID as Knative labels them, started at `initial-scale` (1) replicas; a revision of an older
  generation is deleted once the new one has a ready pod (traffic follows the latest revision).
- a Kubernetes Service `NAME` without a selector (ClusterIP, port 80 `http` to the container port) whose
  EndpointSlice `NAME-ksvc` this controller writes, as the ServerlessService reconciler writes the public
  service's endpoints (pkg/reconciler/serverlessservice): the ready pods of the revision in "serve" mode,
  the activator in "proxy" mode. The activator is netsim's (netsim.node.activator): it listens on the first
  node's IP at port 8012 + i (8012 is Knative's activator HTTP port, networking.BackendHTTPPort), one port per
  Service (`netsim.io/activator-port` on the Kubernetes Service), and is in the path whenever the revision
  has no ready pod or is inactive. netsim follows target-burst-capacity 0 here: with ready pods and traffic
  the activator leaves the path (Knative's default of 200 keeps it there at low scale).
- the KPA (netsim.controlplane.kpa) decides the Deployment's replicas every 2 s (the autoscaler's tick,
  pkg/autoscaler/scaling/multiscaler.go tickInterval) from the concurrency the workload server and the
  activator observed, or at once when the activator holds a request for a revision at zero.
- status as Knative writes it: url/address (cluster-local), latestCreatedRevisionName,
  latestReadyRevisionName, traffic, and the ConfigurationsReady/RoutesReady/Ready conditions (a revision
  scaled to zero stays Ready).
Events: `ScaleFromZero` (a request held by the activator woke the revision), `ScaledToZero`, `Rescaled`.

The daemon hands the controller what it cannot read from the store in `ctx.memory["knative"]`
(`KnativeInputs`: the autoscaler config, the activator's address, request counters); without it (unit
tests without a daemon) the Service's objects are still made and the revision keeps its initial scale.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.events import Event
from netsim.controlplane.kpa import Decision, RevisionState, Sample, decide
from netsim.controlplane.state import Action, Context, Snapshot, status_action
from netsim.model.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from netsim.model.errors import NetsimError, Source
from netsim.model.knative import KIND, AutoscalerConfig, KnativeService, url_for
from netsim.model.pod import Pod
from netsim.model.service import Service, parse_service
from netsim.model.workloads import parse_deployment

ACTOR = "controller/knative-serving"
AUTOSCALER = "autoscaler/kpa"
MANAGED_BY = "serverlessservice.serving.knative.dev"
ACTIVATOR_PORT_ANNOTATION = "netsim.io/activator-port"
ACTIVATOR_BASE_PORT = 8012
TICK = 2.0
SERVICE_LABEL = "serving.knative.dev/service"
REVISION_LABEL = "serving.knative.dev/revision"
CONFIGURATION_LABEL = "serving.knative.dev/configuration"
MEMORY_KEY = "knative/kpa"
INPUTS_KEY = "knative"


@dataclass
class KnativeInputs:
    """What the daemon observes for the controller (netsim.controlplane.knative_runtime)."""

    config: AutoscalerConfig = field(default_factory=AutoscalerConfig)
    activator_ip: str | None = None
    domain: str = "cluster.local"
    admit_service: Any = None  # (service dict, snapshot services) -> the Service with its ClusterIP
    pod_counters: dict[str, tuple[float, float]] = field(default_factory=dict)  # pod -> (requests, busy s)
    activator_counters: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # svc -> (req, held s, now)
    monotonic: float = 0.0  # when the counters were read (time.monotonic())


@dataclass
class _Memory:
    states: dict[str, RevisionState] = field(default_factory=dict)  # revision key -> KPA state
    last_pods: dict[str, tuple[float, float]] = field(default_factory=dict)
    last_activator: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    last_tick: dict[str, float] = field(default_factory=dict)  # revision key -> monotonic time of last decision


def revision_name(ksvc: KnativeService) -> str:
    return f"{ksvc.meta.name}-{int(ksvc.meta.generation or 1):05d}"


def deployment_name(revision: str) -> str:
    return f"{revision}-deployment"


def slice_name(ksvc: KnativeService) -> str:
    return f"{ksvc.meta.name}-ksvc"


def _owner(ksvc: KnativeService) -> dict[str, Any]:
    return {**ps.owner_reference(ksvc), "apiVersion": "serving.knative.dev/v1"}


def _deployment(typed: KnativeService, revision: str, replicas: int) -> dict[str, Any]:
    """The revision's Deployment, built from the KnativeService's template as written (the write edge)."""
    name = typed.meta.name
    labels = {SERVICE_LABEL: name, CONFIGURATION_LABEL: name, REVISION_LABEL: revision, "app": revision}
    tmd = copy.deepcopy(typed.template.get("metadata") or {})
    tmd["labels"] = {**(tmd.get("labels") or {}), **labels}
    pod_spec = {k: v for k, v in copy.deepcopy(typed.template["spec"]).items()
                if k not in ("containerConcurrency", "timeoutSeconds")}
    for c in pod_spec["containers"]:
        env = [e for e in c.get("env") or [] if e.get("name") not in ("PORT", "K_SERVICE", "K_REVISION",
                                                                          "K_CONFIGURATION")]
        # The env Knative gives the user container (pkg/reconciler/revision/resources/deploy.go).
        c["env"] = env + [{"name": "PORT", "value": str(typed.port)}, {"name": "K_REVISION", "value": revision},
                          {"name": "K_CONFIGURATION", "value": name},
                          {"name": "K_SERVICE", "value": name}]
    doc = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": deployment_name(revision), "namespace": typed.meta.namespace, "labels": labels},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {REVISION_LABEL: revision}},
                    "template": {"metadata": tmd, "spec": pod_spec}}}
    out = parse_deployment(doc, Source("<knative>")).to_dict()
    out["metadata"]["ownerReferences"] = [_owner(typed)]
    return out


def _service(typed: KnativeService, port: int) -> dict[str, Any]:
    """The revision's Kubernetes Service (the write edge)."""
    doc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": typed.meta.name, "namespace": typed.meta.namespace,
                        "labels": {SERVICE_LABEL: typed.meta.name},
                        "annotations": {ACTIVATOR_PORT_ANNOTATION: str(port)}},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": typed.port}]}}
    out = parse_service(doc, Source("<knative>")).to_dict()
    out["metadata"]["ownerReferences"] = [_owner(typed)]
    return out


def port_of(annotations: Mapping[str, str]) -> int | None:
    """The activator port a Service's annotations name, if any."""
    raw = annotations.get(ACTIVATOR_PORT_ANNOTATION)
    return int(raw) if raw and str(raw).isdigit() else None


def activator_port(svc: Service | None) -> int | None:
    """The activator port of a typed Service, if it is a Knative one."""
    return port_of(svc.meta.annotations) if svc is not None else None


def _free_port(snap: Snapshot) -> int:
    used = {activator_port(s) for s in snap.typed("Service")}
    port = ACTIVATOR_BASE_PORT
    while port in used:
        port += 1
    return port


def revision_pods(snap: Snapshot, namespace: str | None, revision: str) -> list[Pod]:
    """The revision's pods, typed (the store's parse cache), through the label index (not a walk of every
    pod of the namespace)."""
    out = []
    for raw in snap.labelled("Pod", namespace, REVISION_LABEL, revision):
        try:
            out.append(snap.decode(raw))
        except NetsimError:
            continue
    return out


def ready_pods(snap: Snapshot, namespace: str | None, revision: str) -> list[Pod]:
    return [p for p in revision_pods(snap, namespace, revision)
            if ps.ready(p) and not ps.terminating(p) and p.status.pod_ip]


def _slice(typed: KnativeService, svc: Service, cur: dict[str, Any] | None, pods: list[Pod],
           proxy: bool, inputs: KnativeInputs | None) -> dict[str, Any] | None:
    """The Service's slice to write (the activator's address, or the ready pods'), None when the stored
    one `cur` already says that."""
    if proxy:
        port = activator_port(svc)
        ip = inputs.activator_ip if inputs else None
        eps = [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False}}] \
            if ip and port else []
        ports = [{"name": "http", "protocol": "TCP", "port": port}] if port else []
    else:
        eps = sorted(({"addresses": [p.status.pod_ip],
                       "conditions": {"ready": True, "serving": True, "terminating": False},
                       "targetRef": {"kind": "Pod", "namespace": p.meta.namespace, "name": p.meta.name,
                                     "uid": p.meta.uid},
                       **({"nodeName": p.spec.node_name} if p.spec.node_name else {})} for p in pods),
                     key=lambda e: e["addresses"][0])
        ports = [{"name": "http", "protocol": "TCP", "port": typed.port}]
    labels = {SERVICE_NAME_LABEL: typed.meta.name, MANAGED_BY_LABEL: MANAGED_BY, SERVICE_LABEL: typed.meta.name}
    if cur is not None:
        if cur.get("endpoints") == eps and cur.get("ports") == ports:
            return None
        new = copy.deepcopy(cur)
        new["endpoints"], new["ports"] = eps, ports
        return new
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name(typed), "namespace": typed.meta.namespace, "labels": labels,
                         "ownerReferences": [ps.owner_reference(svc)]},
            "addressType": "IPv4", "endpoints": eps, "ports": ports}


def _sample(mem: _Memory, inputs: KnativeInputs, revision_key: str, svc_key: str, pod_keys: list[str],
            since: float | None) -> tuple[Sample | None, int]:
    """The interval since the revision's last decision: concurrency and requests, and the requests the
    activator holds now."""
    d_req = d_busy = 0.0
    for key in pod_keys:
        req, busy = inputs.pod_counters.get(key, (0.0, 0.0))
        last_req, last_busy = mem.last_pods.get(key, (0.0, 0.0))
        if req < last_req:  # the counter started again (a new pod of that name)
            last_req = last_busy = 0.0
        d_req += req - last_req
        d_busy += max(0.0, busy - last_busy)
    act = inputs.activator_counters.get(svc_key, (0.0, 0.0, 0))
    last_act = mem.last_activator.get(svc_key, (0.0, 0.0, 0))
    d_held = max(0.0, act[1] - last_act[1]) if act[0] >= last_act[0] else act[1]
    held_now = act[2]
    if since is None:
        return None, held_now
    length = inputs.monotonic - since
    if length <= 0:
        return None, held_now
    concurrency = (d_busy + d_held) / length
    if d_req > 0:
        concurrency = max(concurrency, 0.001 * d_req / length)  # a request counts at least a millisecond
    concurrency = max(concurrency, float(held_now))
    return Sample(inputs.monotonic, length, concurrency, d_req), held_now


def _latest_ready(raw: dict[str, Any]) -> str | None:
    """status.latestReadyRevisionName as stored (the typed KnativeService carries no status)."""
    return (raw.get("status") or {}).get("latestReadyRevisionName")


def _status(typed: KnativeService, raw: dict[str, Any], revision: str, ready_rev: str | None, domain: str,
            now: float) -> dict[str, Any]:
    """The status to write, from the stored one (the write edge)."""
    status = copy.deepcopy(raw.get("status") or {})
    url = url_for(typed.meta.name, typed.meta.namespace or "default", domain)
    status.update({"observedGeneration": typed.meta.generation, "url": url, "address": {"url": url},
                   "latestCreatedRevisionName": revision})
    if ready_rev:
        status["latestReadyRevisionName"] = ready_rev
        status["traffic"] = [{"revisionName": ready_rev, "latestRevision": True, "percent": 100}]
    ready = ready_rev == revision
    for typ in ("ConfigurationsReady", "RoutesReady", "Ready"):
        o.set_condition(status, typ, "True" if ready else "Unknown", now,
                        None if ready else "RevisionMissing" if not ready_rev else "Deploying",
                        None if ready else f"Revision {revision!r} is not ready yet")
    return status


def _knative_services(snap: Snapshot, ctx: Context, actions: list[Action]) -> list[tuple[KnativeService, dict]]:
    """The KnativeServices not being deleted, typed from the store's parse cache (parsed once per
    resourceVersion, not on every pass) with their stored dicts; one that no longer parses is reported on
    its stored row (an InternalError event each pass, logged once by the cache): that one only."""
    out = []
    for ksvc in snap.of(KIND):
        if o.is_terminating(ksvc):
            continue
        try:
            out.append((snap.decode(ksvc), ksvc))
        except Exception as exc:  # noqa: BLE001 - a stored object that no longer parses: this one only
            actions.append(Action("event", ksvc, Event(ctx.now, ACTOR, o.ref(ksvc), "InternalError", str(exc)[:500],
                                                       type="Warning")))
    return out


def _scaled(raw: dict[str, Any], replicas: int, event: Event) -> Action:
    """The revision Deployment's scale, from its stored dict (the write edge)."""
    new = copy.deepcopy(raw)
    new["spec"]["replicas"] = replicas
    return Action("update", new, event)


def _owned_by(obj: Any, owner: Any) -> bool:
    ref = ps.controller_ref(obj)
    return ref is not None and ref.get("uid") == owner.meta.uid


def reconcile_knative(snap: Snapshot, ctx: Context) -> list[Action]:
    inputs: KnativeInputs | None = ctx.memory.get(INPUTS_KEY)
    mem: _Memory = ctx.memory.setdefault(MEMORY_KEY, _Memory())
    actions: list[Action] = []
    seen_revisions: set[str] = set()
    for typed, ksvc in _knative_services(snap, ctx, actions):
        ns, name = typed.meta.namespace, typed.meta.name
        ref = ps.ref(typed)
        revision = revision_name(typed)
        rev_key = f"{ns}/{revision}"
        seen_revisions.add(rev_key)
        cfg = inputs.config if inputs else AutoscalerConfig()
        scaling = typed.scaling
        initial = max(scaling.initial_scale, scaling.min_scale)
        if scaling.max_scale:
            initial = min(initial, scaling.max_scale)
        # -- the revision's Deployment
        got_dep = snap.typed_get("Deployment", ns, deployment_name(revision))
        dep = got_dep[0] if got_dep is not None else None
        if snap.get("Deployment", ns, deployment_name(revision)) is None:
            actions.append(Action("create", _deployment(typed, revision, initial),
                                  Event(ctx.now, ACTOR, ref, "Created",
                                        f"Created Revision {revision!r} (Deployment {deployment_name(revision)})")))
        pods = ready_pods(snap, ns, revision)
        # older revisions go once this one serves
        for old, old_raw in snap.typed_with_raw("Deployment", ns):
            lbl = old.meta.labels
            if lbl.get(SERVICE_LABEL) == name and lbl.get(REVISION_LABEL) not in (None, revision) \
                    and _owned_by(old, typed) and (pods or old.replicas == 0):
                actions.append(Action("delete", old_raw))
        # -- the Kubernetes Service and its endpoints
        got_svc = snap.typed_get("Service", ns, name)
        svc = got_svc[0] if got_svc is not None else None
        if snap.get("Service", ns, name) is None:
            new_svc = _service(typed, _free_port(snap))
            if inputs is not None and inputs.admit_service is not None:
                new_svc = inputs.admit_service(new_svc, snap.of("Service"))
            actions.append(Action("create", new_svc))
        elif svc is None or not _owned_by(svc, typed):
            actions.append(Action("event", ksvc, Event(ctx.now, ACTOR, ref, "InternalError",
                                                       f"Service {ns}/{name} exists and is not owned by this "
                                                       "Knative Service", type="Warning")))
            continue
        # -- the autoscaler
        mono = inputs.monotonic if inputs is not None else ctx.now  # the autoscaler's clock
        st = mem.states.get(rev_key)
        if st is None:
            st = mem.states[rev_key] = RevisionState(active_since=mono, desired=initial)
        current = dep.replicas if dep is not None else initial
        decision: Decision | None = None
        if inputs is not None:
            pod_keys = [p.meta.key for p in revision_pods(snap, ns, revision)]
            svc_key = f"{ns}/{name}"
            held_now = inputs.activator_counters.get(svc_key, (0.0, 0.0, 0))[2]
            last = mem.last_tick.get(rev_key)
            due = last is None or inputs.monotonic - last >= TICK or (held_now > 0 and current == 0)
            if due:
                sample, _ = _sample(mem, inputs, rev_key, svc_key, pod_keys, last)
                for key in pod_keys:
                    mem.last_pods[key] = inputs.pod_counters.get(key, (0.0, 0.0))
                mem.last_activator[svc_key] = inputs.activator_counters.get(svc_key, (0.0, 0.0, 0))
                mem.last_tick[rev_key] = inputs.monotonic
                was_active = st.active
                decision = decide(st, sample, mono, len(pods), scaling, cfg, typed.container_concurrency)
                if got_dep is not None and decision.desired != current:
                    if current == 0:
                        ev = Event(ctx.now, AUTOSCALER, ref, "ScaleFromZero",
                                   f"revision {revision}: {held_now} request(s) held by the activator; "
                                   f"scaling from 0 to {decision.desired}")
                    elif decision.desired == 0:
                        ev = Event(ctx.now, AUTOSCALER, ref, "ScaledToZero",
                                   f"revision {revision}: no traffic for the stable window "
                                   f"({scaling.window or cfg.stable_window:g}s) and the scale-to-zero grace period "
                                   f"({cfg.scale_to_zero_grace_period:g}s); scaling from {current} to 0")
                    else:
                        ev = Event(ctx.now, AUTOSCALER, ref, "Rescaled",
                                   f"revision {revision}: observed {'rps' if scaling.metric == 'rps' else 'concurrency'}"
                                   f" {decision.stable:.3g}; scaling from {current} to {decision.desired}")
                    actions.append(_scaled(got_dep[1], decision.desired, ev))
                elif was_active and not st.active:
                    actions.append(Action("event", ksvc, Event(
                        ctx.now, AUTOSCALER, ref, "Inactive",
                        f"revision {revision}: no traffic for the stable window; the activator is in the path")))
        # -- endpoints: the ready pods when serving, the activator otherwise
        if svc is not None:
            proxy = not pods or not st.active
            cur = snap.get("EndpointSlice", ns, slice_name(typed))
            want = _slice(typed, svc, cur, pods, proxy, inputs)
            if want is not None:
                mode = "proxy (activator)" if proxy else f"serve ({len(pods)} pod(s))"
                actions.append(Action("update" if cur is not None else "create", want,
                                      Event(ctx.now, ACTOR, ps.ref(svc), "EndpointsUpdated", f"{o.name(want)}: {mode}")))
        # -- status
        ready_rev = revision if pods else _latest_ready(ksvc)
        sa = status_action(ksvc, _status(typed, ksvc, revision, ready_rev, inputs.domain if inputs else "cluster.local",
                                         ctx.now))
        if sa is not None:
            actions.append(sa)
    for key in [k for k in mem.states if k not in seen_revisions]:
        del mem.states[key]
        mem.last_tick.pop(key, None)
    return actions
