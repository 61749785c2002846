"""The HorizontalPodAutoscaler controller: kube-controller-manager's podautoscaler, as a pure function.

Our own code after kubernetes pkg/controller/podautoscaler (horizontal.go: reconcileAutoscaler,
computeReplicasForMetrics, normalizeDesiredReplicas[WithBehaviors], stabilizeRecommendation[WithBehaviors],
convertDesiredReplicasWithBehaviorRate, calculateScale{Up,Down}Limit...; replica_calculator.go:
GetResourceReplicas, GetRawResourceReplicas, GetMetricReplicas, GetObjectMetricReplicas, groupPods;
metrics/utilization.go). What it does, per HPA, once every sync period (--horizontal-pod-autoscaler-sync-period,
15 s):

1. Read the target's scale (spec.replicas, the selector) and its pods.
2. Per metric, a replica proposal: the usage ratio (current / target) times the ready pods, rounded up;
   nothing changes when the ratio is within the tolerance (0.1) of 1. For CPU, pods still starting (within
   the CPU initialization period, 5 min, with a metric older than their last readiness change) or not ready
   are left out; on a scale up unready pods count as using nothing, pods without metrics as using nothing on
   a scale up and their full request (or the target, if higher) on a scale down; if that recount flips the
   direction or lands within the tolerance, the replicas stay. The largest proposal wins; a metric that
   cannot be computed only blocks a scale down.
3. Outside [minReplicas, maxReplicas] the bound wins; otherwise the proposal is stabilized (without a
   behavior: the highest recommendation of the last 5 minutes; with one: the scale-up and scale-down windows)
   and rate-limited (without a behavior: at most max(2 x current, 4); with one: its policies over their
   periods, selectPolicy Max/Min/Disabled), then bounded.
4. Write the target's replicas when they change (event SuccessfulRescale "New size: N; reason: ..."), and
   the HPA's status: currentReplicas, desiredReplicas, currentMetrics, lastScaleTime and the conditions
   AbleToScale, ScalingActive and ScalingLimited with the upstream reasons and messages.

Metrics come from `ctx.metrics` (netsim.model.metrics.MetricsView: per pod cpu, memory and requests
per second, with the sample's timestamp and window, as metrics-server reports them); the controller's
memory (recommendations, scale events, last sync) from `ctx.memory["hpa"]`, kept by the daemon across
passes as the real controller keeps it in its process.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.model.errors import NetsimError
from netsim.model.hpa import HorizontalPodAutoscaler, MetricSpec, ScalingRules
from netsim.model.metrics import MetricsView, PodUsage
from netsim.model.pod import Pod
from netsim.model.quantity import canonical, parse_quantity
from netsim.store import parse_time, rfc3339

ACTOR = "controller/horizontal-pod-autoscaler"
SCALE_UP_LIMIT_FACTOR, SCALE_UP_LIMIT_MINIMUM = 2.0, 4.0  # horizontal.go scaleUpLimitFactor / Minimum
SCALABLE = {"Deployment": "deployments.apps", "ReplicaSet": "replicasets.apps", "StatefulSet": "statefulsets.apps"}
RPS_METRICS = ("requests_per_second", "requests-per-second", "http_requests_per_second")


@dataclass
class AutoscalingConfig:
    """kube-controller-manager's HPA flags (and metrics-server's resolution, used by the sampler)."""

    sync_period: float = 15.0  # --horizontal-pod-autoscaler-sync-period
    downscale_stabilization: float = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
    tolerance: float = 0.1  # --horizontal-pod-autoscaler-tolerance
    cpu_initialization_period: float = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
    initial_readiness_delay: float = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay
    metric_resolution: float = 15.0  # metrics-server --metric-resolution


@dataclass
class HpaMemory:
    """What the controller remembers between syncs, per HPA key (ns/name)."""

    recommendations: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    scale_up_events: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    scale_down_events: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    last_sync: dict[str, float] = field(default_factory=dict)


class MetricError(NetsimError):
    """A metric that cannot be computed: its condition reason and message."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Proposal:
    replicas: int
    name: str  # what the rescale reason calls the metric
    status: dict[str, Any]


# -- the replica calculator -------------------------------------------------------------------------------

def _within(ratio: float, tolerance: float) -> bool:
    return abs(1.0 - ratio) <= tolerance


def _pod_requests(pod: Pod, resource: str, container: str | None) -> float:
    total = Fraction(0)
    for c in pod.spec.containers:
        if container and c.name != container:
            continue
        resources = c.extra.get("resources")
        requests = resources.get("requests") if isinstance(resources, Mapping) else None
        req = requests.get(resource) if isinstance(requests, Mapping) else None
        if req is None:
            raise MetricError("FailedGetResourceMetric", f"failed to get {resource} utilization: missing request "
                                                         f"for {resource} in container {c.name} of Pod "
                                                         f"{pod.meta.name}")
        total += parse_quantity(req)
    return float(total)


def group_pods(pods: list[Pod], metrics: dict[str, float], usage: dict[str, PodUsage], resource: str,
               cfg: AutoscalingConfig, now: float) -> tuple[int, set[str], set[str]]:
    """(ready pod count, unready pods, missing pods); ignored pods (deleted, failed) are dropped from `metrics`
    (replica_calculator.go groupPods)."""
    ready, unready, missing = 0, set(), set()
    for pod in pods:
        name = pod.meta.name
        if ps.terminating(pod) or pod.status.phase == "Failed":
            metrics.pop(name, None)
            continue
        if pod.status.phase == "Pending":
            unready.add(name)
            continue
        if name not in metrics:
            missing.add(name)
            continue
        if resource == "cpu":
            cond = pod.status.condition("Ready")
            start_time = pod.status.raw.get("startTime")
            start = parse_time(start_time) if isinstance(start_time, str) else None
            if cond is None or start is None:
                bad = True
            else:
                changed = parse_time(cond.last_transition_time) or start
                m = usage[name]
                if start + cfg.cpu_initialization_period > now:
                    bad = cond.status == "False" or m.timestamp < changed + m.window
                else:
                    bad = cond.status == "False" and start + cfg.initial_readiness_delay > changed
            if bad:
                unready.add(name)
                continue
        ready += 1
    for name in unready:
        metrics.pop(name, None)
    return ready, unready, missing


def _plain_replicas(current: int, metrics: dict[str, float], ready: int, unready: set[str], missing: set[str],
                    target: float, tol: float, requests: dict[str, float] | None = None,
                    target_util: int | None = None) -> int:
    """The shared tail of GetResourceReplicas / calcPlainMetricReplicas: `metrics` are per-pod values, the
    ratio is their total over the target total (utilization) or their average over the target (plain)."""
    def ratio(ms: dict[str, float]) -> float:
        if requests is not None and target_util is not None:
            req = sum(requests[n] for n in ms)
            util = int(sum(ms.values()) * 100 / req) if req else 0
            return util / target_util
        return (sum(ms.values()) / len(ms)) / target
    usage_ratio = ratio(metrics)
    scale_up_unready = bool(unready) and usage_ratio > 1.0
    if not scale_up_unready and not missing:
        if _within(usage_ratio, tol):
            return current
        return math.ceil(usage_ratio * ready)
    ms = dict(metrics)
    if missing:
        if usage_ratio < 1.0:
            for n in missing:  # a scale down counts them at their request (or the target, if higher)
                ms[n] = (requests[n] * max(100, target_util or 0) / 100) if requests is not None else target
        elif usage_ratio > 1.0:
            for n in missing:
                ms[n] = 0.0
    if scale_up_unready:
        for n in unready:
            ms[n] = 0.0
    new_ratio = ratio(ms)
    if _within(new_ratio, tol) or (usage_ratio < 1.0 < new_ratio) or (usage_ratio > 1.0 > new_ratio):
        return current
    new = math.ceil(new_ratio * len(ms))
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return current
    return new


def _utilization(metrics: dict[str, float], requests: dict[str, float]) -> tuple[int, float]:
    req = sum(requests[n] for n in metrics)
    return (int(sum(metrics.values()) * 100 / req) if req else 0), (sum(metrics.values()) / len(metrics))


def _pod_values(pods: list[Pod], view: MetricsView, what: str,
                container: str | None = None) -> tuple[dict[str, float], dict[str, PodUsage]]:
    values, usage = {}, {}
    for pod in pods:
        u = view.pod(pod.meta.namespace or "default", pod.meta.name)
        if u is None:
            continue
        usage[pod.meta.name] = u
        values[pod.meta.name] = u.value(what, container)
    return values, usage


def resource_proposal(spec: MetricSpec, current: int, pods: list[Pod], view: MetricsView,
                      cfg: AutoscalingConfig, now: float) -> Proposal:
    resource = spec.resource or "cpu"
    if resource not in ("cpu", "memory"):
        raise MetricError("FailedGetResourceMetric", f"unable to get metrics for resource {resource}: "
                                                     f"no metrics returned from resource metrics API")
    if not pods:
        raise MetricError("FailedGetResourceMetric",
                          "no pods returned by selector while calculating replica count")
    metrics, usage = _pod_values(pods, view, resource, spec.container)
    if not metrics:
        raise MetricError("FailedGetResourceMetric", f"unable to get metrics for resource {resource}: no metrics "
                                                     f"returned from resource metrics API")
    ready, unready, missing = group_pods(pods, metrics, usage, resource, cfg, now)
    if not metrics:
        raise MetricError("FailedGetResourceMetric", f"failed to get {resource} utilization: did not receive "
                                                     f"metrics for targeted pods (pods might be unready)")
    tgt = spec.target
    if tgt.type == "Utilization":
        requests = {p.meta.name: _pod_requests(p, resource, spec.container) for p in pods
                    if p.meta.name in metrics or p.meta.name in missing or p.meta.name in unready}
        util, avg = _utilization(metrics, requests)
        replicas = _plain_replicas(current, metrics, ready, unready, missing, 0.0, cfg.tolerance, requests,
                                   tgt.average_utilization)
        name = f"{resource} resource utilization (percentage of request)"
        current_status = {"averageUtilization": util, "averageValue": _resource_quantity(resource, avg)}
    else:
        target = float(tgt.average_value or 0)
        avg = sum(metrics.values()) / len(metrics)
        replicas = _plain_replicas(current, metrics, ready, unready, missing, target, cfg.tolerance)
        name = f"{resource} resource"
        current_status = {"averageValue": _resource_quantity(resource, avg)}
    key = "containerResource" if spec.type == "ContainerResource" else "resource"
    body = {"name": resource, "current": current_status}
    if spec.container:
        body["container"] = spec.container
    return Proposal(replicas, name, {"type": spec.type, key: body})


def _resource_quantity(resource: str, value: float) -> str:
    if resource == "memory":
        return str(int(value))
    return canonical(Fraction(value).limit_denominator(1000))


def pods_proposal(spec: MetricSpec, current: int, pods: list[Pod], view: MetricsView,
                  cfg: AutoscalingConfig, now: float) -> Proposal:
    metric = spec.metric or ""
    if metric not in RPS_METRICS:
        raise MetricError("FailedGetPodsMetric", f"unable to get metric {metric}: no metrics returned from custom "
                                                 f"metrics API (netsim serves {RPS_METRICS[0]})")
    metrics, usage = _pod_values(pods, view, "rps")
    if not metrics:
        raise MetricError("FailedGetPodsMetric", f"unable to get metric {metric}: no metrics returned for the pods")
    ready, unready, missing = group_pods(pods, metrics, usage, "", cfg, now)
    target = float(spec.target.average_value or 0)
    avg = sum(metrics.values()) / len(metrics) if metrics else 0.0
    replicas = _plain_replicas(current, metrics, ready, unready, missing, target, cfg.tolerance) if metrics \
        else current
    return Proposal(replicas, f"pods metric {metric}",
                    {"type": "Pods", "pods": {"metric": {"name": metric},
                                              "current": {"averageValue": canonical(Fraction(avg).limit_denominator(1000))}}})


def object_proposal(spec: MetricSpec, current: int, pods: list[Pod], snap: Snapshot, ns: str,
                    view: MetricsView, cfg: AutoscalingConfig) -> Proposal:
    metric, described = spec.metric or "", spec.described or {}
    kind, name = described.get("kind", ""), described.get("name", "")
    got = snap.typed_get(kind, ns, name) if kind in ("Service", "Deployment") else None
    if metric not in RPS_METRICS or got is None:
        raise MetricError("FailedGetObjectMetric", f"unable to get metric {metric}: {kind}/{name}: no metrics "
                                                   f"returned from custom metrics API")
    obj = got[0]
    if kind == "Service":
        sel = obj.selector
        members = [p for p in snap.typed("Pod", ns) if sel and all(p.meta.labels.get(k) == v for k, v in sel.items())]
    else:
        members = _selected_pods(snap, obj, ns)
    usage = sum(u.rps for p in members if (u := view.pod(ns, p.meta.name)) is not None)
    ready = sum(1 for p in pods if ps.ready(p)) or 1
    tgt = spec.target
    if tgt.type == "AverageValue":
        target = float(tgt.average_value or 0)
        ratio = usage / (target * current) if current else 0.0
        replicas = current if _within(ratio, cfg.tolerance) else math.ceil(usage / target)
        cur = {"averageValue": canonical(Fraction(usage / max(current, 1)).limit_denominator(1000))}
    else:
        target = float(tgt.value or 0)
        ratio = usage / target
        if current == 0:
            replicas = math.ceil(ratio)
        else:
            replicas = current if _within(ratio, cfg.tolerance) else math.ceil(ratio * ready)
        cur = {"value": canonical(Fraction(usage).limit_denominator(1000))}
    return Proposal(replicas, f"{kind} metric {metric}",
                    {"type": "Object", "object": {"metric": {"name": metric}, "describedObject": dict(described),
                                                  "current": cur}})


# -- normalization -----------------------------------------------------------------------------------------

def _change_in(events: list[tuple[int, float]], period: float, now: float) -> int:
    return sum(change for change, t in events if t > now - period)


def scale_up_limit(current: int, up: list[tuple[int, float]], down: list[tuple[int, float]],
                   rules: ScalingRules, now: float) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick = min if rules.select_policy == "Min" else max
    result: int | None = None
    for p in rules.policies:
        start = current - _change_in(up, p.period_seconds, now) + _change_in(down, p.period_seconds, now)
        proposed = start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_down_limit(current: int, up: list[tuple[int, float]], down: list[tuple[int, float]],
                     rules: ScalingRules, now: float) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick = max if rules.select_policy == "Min" else min
    result: int | None = None
    for p in rules.policies:
        start = current - _change_in(up, p.period_seconds, now) + _change_in(down, p.period_seconds, now)
        proposed = start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def _record(recs: list[tuple[int, float]], value: int, now: float, keep: float) -> None:
    recs[:] = [(v, t) for v, t in recs if t > now - keep]
    recs.append((value, now))


def normalize(hpa: HorizontalPodAutoscaler, key: str, current: int, desired: int, mem: HpaMemory,
              cfg: AutoscalingConfig, now: float, conditions: dict[str, tuple[str, str, str]]) -> int:
    """The stabilized, rate-limited, bounded replica count; fills AbleToScale and ScalingLimited."""
    recs = mem.recommendations.setdefault(key, [])
    lo, hi = hpa.min_replicas, hpa.max_replicas
    if hpa.behavior is None:
        window = cfg.downscale_stabilization
        stabilized = max([desired, *[v for v, t in recs if t > now - window]])
        _record(recs, desired, now, window)
        if stabilized != desired:
            conditions["AbleToScale"] = ("True", "ScaleDownStabilized", "recent recommendations were higher than "
                                         "current one, applying the highest recent recommendation")
        else:
            conditions["AbleToScale"] = ("True", "ReadyForNewScale", "recommended size matches current size")
        limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
        if hi > limit:
            top, why, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the " \
                                                   "maximum scale rate"
        else:
            top, why, msg = hi, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
        if stabilized < lo:
            result, why, msg = lo, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
        elif stabilized > top:
            result = top
        else:
            result, why, msg = stabilized, "DesiredWithinRange", "the desired count is within the acceptable range"
    else:
        up_rules, down_rules = hpa.behavior.scale_up, hpa.behavior.scale_down
        up_window = up_rules.stabilization_window_seconds or 0
        down_window = down_rules.stabilization_window_seconds
        if down_window is None:
            down_window = cfg.downscale_stabilization
        up_rec = min([desired, *[v for v, t in recs if t > now - up_window]])
        down_rec = max([desired, *[v for v, t in recs if t > now - down_window]])
        stabilized = max(current, up_rec)
        stabilized = min(stabilized, down_rec)
        _record(recs, desired, now, max(up_window, down_window))
        if stabilized != desired:
            if desired >= current:
                conditions["AbleToScale"] = ("True", "ScaleUpStabilized", "recent recommendations were lower than "
                                             "current one, applying the lowest recent recommendation")
            else:
                conditions["AbleToScale"] = ("True", "ScaleDownStabilized", "recent recommendations were higher "
                                             "than current one, applying the highest recent recommendation")
        else:
            conditions["AbleToScale"] = ("True", "ReadyForNewScale", "recommended size matches current size")
        ups, downs = mem.scale_up_events.get(key, []), mem.scale_down_events.get(key, [])
        result, why, msg = stabilized, "DesiredWithinRange", "the desired count is within the acceptable range"
        if stabilized > current:
            limit = max(scale_up_limit(current, ups, downs, up_rules, now), current)
            if hi > limit:
                top, why2, msg2 = limit, "ScaleUpLimit", "the desired replica count is increasing faster than " \
                                                         "the maximum scale rate"
            else:
                top, why2, msg2 = hi, "TooManyReplicas", "the desired replica count is more than the maximum " \
                                                         "replica count"
            if stabilized > top:
                result, why, msg = top, why2, msg2
        elif stabilized < current:
            limit = min(scale_down_limit(current, ups, downs, down_rules, now), current)
            if lo < limit:
                bottom, why2, msg2 = limit, "ScaleDownLimit", "the desired replica count is decreasing faster " \
                                                              "than the maximum scale rate"
            else:
                bottom, why2, msg2 = lo, "TooFewReplicas", "the desired replica count is less than the minimum " \
                                                           "replica count"
            if stabilized < bottom:
                result, why, msg = bottom, why2, msg2
    conditions["ScalingLimited"] = ("False" if result == stabilized else "True", why, msg)
    return result


def _store_scale_event(hpa: HorizontalPodAutoscaler, key: str, mem: HpaMemory, before: int, after: int,
                       now: float) -> None:
    if hpa.behavior is None:
        return  # upstream keeps none: they would not be used
    rules = hpa.behavior.scale_up if after > before else hpa.behavior.scale_down
    longest = max((p.period_seconds for p in rules.policies), default=0)
    events = (mem.scale_up_events if after > before else mem.scale_down_events).setdefault(key, [])
    events[:] = [(c, t) for c, t in events if t > now - longest]
    events.append((abs(after - before), now))


# -- the controller ---------------------------------------------------------------------------------------

def _selected_pods(snap: Snapshot, target: Any, ns: str) -> list[Pod]:
    """The typed pods (the store's parse cache) of the namespace the typed target's selector matches (the
    scale subresource's status.selector)."""
    sel = target.selector
    if sel is None or sel.empty:
        return []
    return [p for p in snap.typed("Pod", ns) if sel.matches(p.meta.labels)]


def _set(status: dict[str, Any], conditions: dict[str, tuple[str, str, str]], now: float) -> None:
    for typ in ("AbleToScale", "ScalingActive", "ScalingLimited"):
        if typ in conditions:
            value, reason, message = conditions[typ]
            o.set_condition(status, typ, value, now, reason, message)


def reconcile_hpa(hpa_obj: dict[str, Any], snap: Snapshot, ctx: Context, view: MetricsView, mem: HpaMemory,
                  cfg: AutoscalingConfig) -> list[Action]:
    now = ctx.now
    ns = o.namespace(hpa_obj) or "default"
    key = f"{ns}/{o.name(hpa_obj)}"
    hpa: HorizontalPodAutoscaler = snap.decode(hpa_obj)  # parsed once per resourceVersion (the parse cache)
    ref = f"HorizontalPodAutoscaler {key}"
    status = _stored_status(hpa_obj)
    conditions: dict[str, tuple[str, str, str]] = {}
    events: list[Event] = []
    actions: list[Action] = []
    got = snap.typed_get(hpa.target_kind, ns, hpa.target_name) if hpa.target_kind in SCALABLE else None
    if got is None:
        what = SCALABLE.get(hpa.target_kind, hpa.target_kind.lower())
        msg = f'{what} "{hpa.target_name}" not found' if hpa.target_kind in SCALABLE else \
            f"the server could not find the requested resource (scale of {hpa.target_kind})"
        conditions["AbleToScale"] = ("False", "FailedGetScale", f"the HPA controller was unable to get the target's "
                                                                f"current scale: {msg}")
        events.append(Event(now, ACTOR, ref, "FailedGetScale", msg, type="Warning"))
        _set(status, conditions, now)
        return _status_action(hpa_obj, status, events)
    target, target_raw = got
    current = target.replicas
    status["currentReplicas"] = int(target.status.raw.get("replicas", current))
    pods = _selected_pods(snap, target, ns)
    desired, rescale_reason, metric_statuses = 0, "", []
    rescale = False
    if current == 0 and hpa.min_replicas != 0:
        desired = 0
        conditions["ScalingActive"] = ("False", "ScalingDisabled",
                                       "scaling is disabled since the replica count of the target is zero")
    elif current > hpa.max_replicas:
        rescale_reason, desired = "Current number of replicas above Spec.MaxReplicas", hpa.max_replicas
    elif current < hpa.min_replicas:
        rescale_reason, desired = "Current number of replicas below Spec.MinReplicas", hpa.min_replicas
    else:
        best, best_name, errors = -1, "", []
        for spec in hpa.metrics:
            try:
                if spec.type in ("Resource", "ContainerResource"):
                    p = resource_proposal(spec, current, pods, view, cfg, now)
                elif spec.type == "Pods":
                    p = pods_proposal(spec, current, pods, view, cfg, now)
                elif spec.type == "Object":
                    p = object_proposal(spec, current, pods, snap, ns, view, cfg)
                else:
                    raise MetricError("FailedGetExternalMetric", f"unable to get external metric {ns}/{spec.metric}:"
                                                                 f" no external metrics API is served")
            except MetricError as exc:
                errors.append(exc)
                metric_statuses.append({"type": spec.type})
                continue
            metric_statuses.append(p.status)
            if p.replicas > best:
                best, best_name = p.replicas, p.name
        if errors and (len(errors) == len(hpa.metrics) or best < current):
            first = errors[0]
            conditions["ScalingActive"] = ("False", first.reason,
                                           f"the HPA was unable to compute the replica count: {first}")
            events.append(Event(now, ACTOR, ref, first.reason, str(first), type="Warning"))
            if len(errors) == len(hpa.metrics):
                events.append(Event(now, ACTOR, ref, "FailedComputeMetricsReplicas",
                                    f"invalid metrics ({len(errors)} invalid out of {len(hpa.metrics)}), first "
                                    f"error is: {first}", type="Warning"))
            status.update({"desiredReplicas": current, "currentMetrics": [m for m in metric_statuses if len(m) > 1]})
            _set(status, conditions, now)
            return _status_action(hpa_obj, status, events)
        conditions["ScalingActive"] = ("True", "ValidMetricFound",
                                       f"the HPA was able to successfully calculate a replica count from {best_name}")
        desired = max(desired, best)
        if desired > current:
            rescale_reason = f"{best_name} above target"
        elif desired < current:
            rescale_reason = "All metrics below target"
        desired = normalize(hpa, key, current, desired, mem, cfg, now, conditions)
    rescale = desired != current and not (current == 0 and hpa.min_replicas != 0)
    status["desiredReplicas"] = desired
    status["currentMetrics"] = [m for m in metric_statuses if len(m) > 1]
    if rescale:
        actions.append(_scale(target_raw, desired))
        events.append(Event(now, ACTOR, ref, "SuccessfulRescale", f"New size: {desired}; reason: {rescale_reason}"))
        conditions["AbleToScale"] = ("True", "SucceededRescale",
                                     f"the HPA controller was able to update the target scale to {desired}")
        status["lastScaleTime"] = rfc3339(now)
        _store_scale_event(hpa, key, mem, current, desired, now)
    _set(status, conditions, now)
    return actions + _status_action(hpa_obj, status, events)


def _stored_status(raw: dict[str, Any]) -> dict[str, Any]:
    """The HPA's stored status, which its status write starts from (fields we do not compute kept)."""
    return copy.deepcopy(raw.get("status") or {})


def _scale(raw: dict[str, Any], replicas: int) -> Action:
    """The target's scale (its stored dict, with spec.replicas: the write edge)."""
    new = copy.deepcopy(raw)
    new.setdefault("spec", {})["replicas"] = replicas
    return Action("update", new)


def _status_action(hpa_obj: dict[str, Any], status: dict[str, Any], events: list[Event]) -> list[Action]:
    """The status write, only when it changed (updateStatusIfNeeded), and the events either way."""
    new = copy.deepcopy(hpa_obj)
    new["status"] = status
    if status == (hpa_obj.get("status") or {}):
        return [Action("event", new, e) for e in events]
    return [Action("status", new, events[0] if events else None)] + [Action("event", new, e) for e in events[1:]]


def reconcile_hpas(snap: Snapshot, ctx: Context) -> list[Action]:
    """Every HPA whose sync period has passed; a quiet cluster with no HPA costs nothing."""
    hpas = snap.of("HorizontalPodAutoscaler")
    if not hpas:
        return []
    memory = ctx.memory.setdefault("hpa", HpaMemory())
    cfg = ctx.config.autoscaling
    view = ctx.metrics if ctx.metrics is not None else MetricsView.empty()
    actions: list[Action] = []
    live = set()
    for h in hpas:
        key = f"{o.namespace(h) or 'default'}/{o.name(h)}"
        live.add(key)
        if ctx.now - memory.last_sync.get(key, -math.inf) < cfg.sync_period:
            continue
        memory.last_sync[key] = ctx.now
        actions += reconcile_hpa(h, snap, ctx, view, memory, cfg)
    for gone in set(memory.last_sync) - live:
        for table in (memory.last_sync, memory.recommendations, memory.scale_up_events, memory.scale_down_events):
            table.pop(gone, None)
    return actions
