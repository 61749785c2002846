"""HorizontalPodAutoscaler (autoscaling/v2, and autoscaling/v1 converted to it): validated and defaulted as
the API server does.

Defaulting (pkg/apis/autoscaling/v2/defaults.go): minReplicas 1; no metrics means one Resource metric, cpu
at 80 % average utilization; a `behavior` that is given has its missing parts filled in: scaleUp
{stabilizationWindowSeconds 0, selectPolicy Max, policies [Pods 4 per 15 s, Percent 100 per 15 s]}, scaleDown
{selectPolicy Max, policies [Percent 100 per 15 s]} with its stabilization window left to the controller
(--horizontal-pod-autoscaler-downscale-stabilization, 5 min). autoscaling/v1's
targetCPUUtilizationPercentage is the same cpu Utilization metric (the API server converts v1 to v2).

Validation (pkg/apis/autoscaling/validation/validation.go): scaleTargetRef kind and name; minReplicas at
least 1 (0 needs the alpha HPAScaleToZero gate, not enabled here); maxReplicas at least 1 and at least
minReplicas; each metric's type populated and only it; Resource targets Utilization (averageUtilization >
0) or AverageValue; Pods targets AverageValue; Object targets Value or AverageValue and names its object;
behavior policies Pods/Percent with value > 0 and periodSeconds in 1..1800, stabilizationWindowSeconds in
0..3600, selectPolicy Max/Min/Disabled. External metrics are accepted and reported as unavailable, as a
cluster without an external metrics adapter does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.errors import Source
from netsim.model.meta import Fields, ObjectMeta
from netsim.model.pod import object_fields
from netsim.model.quantity import canonical, parse_quantity

METRIC_TYPES = ("Resource", "Pods", "Object", "ContainerResource", "External")
SOURCE_KEY = {"Resource": "resource", "Pods": "pods", "Object": "object", "ContainerResource": "containerResource",
              "External": "external"}
TARGET_TYPES = ("Utilization", "Value", "AverageValue")
DEFAULT_CPU_UTILIZATION = 80  # autoscaling.DefaultCPUUtilization
MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_SECONDS = 3600


@dataclass(frozen=True)
class MetricTarget:
    type: str
    average_utilization: int | None = None
    average_value: Fraction | None = None
    value: Fraction | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.average_utilization is not None:
            out["averageUtilization"] = self.average_utilization
        if self.average_value is not None:
            out["averageValue"] = canonical(self.average_value)
        if self.value is not None:
            out["value"] = canonical(self.value)
        return out


@dataclass(frozen=True)
class MetricSpec:
    """One metric: `type` and what it measures (resource name, container, metric name, described object)."""

    type: str
    target: MetricTarget
    resource: str | None = None  # Resource / ContainerResource: cpu, memory
    container: str | None = None  # ContainerResource
    metric: str | None = None  # Pods / Object / External: the metric's name
    selector: dict[str, Any] | None = None  # the metric's label selector, kept as written
    described: dict[str, str] | None = None  # Object: {apiVersion, kind, name}

    def to_dict(self) -> dict[str, Any]:
        src: dict[str, Any] = {}
        if self.type in ("Resource", "ContainerResource"):
            src["name"] = self.resource
            if self.container:
                src["container"] = self.container
        else:
            src["metric"] = {"name": self.metric, **({"selector": self.selector} if self.selector else {})}
        if self.described:
            src["describedObject"] = dict(self.described)
        src["target"] = self.target.to_dict()
        return {"type": self.type, SOURCE_KEY[self.type]: src}


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # Pods | Percent
    value: int
    period_seconds: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "periodSeconds": self.period_seconds}


@dataclass(frozen=True)
class ScalingRules:
    policies: tuple[ScalingPolicy, ...]
    select_policy: str = "Max"
    stabilization_window_seconds: int | None = None  # None: the controller's default (scale down)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"selectPolicy": self.select_policy, "policies": [p.to_dict() for p in self.policies]}
        if self.stabilization_window_seconds is not None:
            out["stabilizationWindowSeconds"] = self.stabilization_window_seconds
        return out


def default_scale_up() -> ScalingRules:
    return ScalingRules((ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)), "Max", 0)


def default_scale_down() -> ScalingRules:
    return ScalingRules((ScalingPolicy("Percent", 100, 15),), "Max", None)


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = field(default_factory=default_scale_up)
    scale_down: ScalingRules = field(default_factory=default_scale_down)

    def to_dict(self) -> dict[str, Any]:
        return {"scaleUp": self.scale_up.to_dict(), "scaleDown": self.scale_down.to_dict()}


@dataclass(frozen=True)
class HorizontalPodAutoscaler:
    kind: ClassVar[str] = "HorizontalPodAutoscaler"
    api_version: ClassVar[str] = "autoscaling/v2"
    meta: ObjectMeta
    target_kind: str
    target_name: str
    target_api_version: str
    max_replicas: int
    min_replicas: int = 1
    metrics: tuple[MetricSpec, ...] = ()
    behavior: Behavior | None = None

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "scaleTargetRef": {"apiVersion": self.target_api_version, "kind": self.target_kind,
                               "name": self.target_name},
            "minReplicas": self.min_replicas, "maxReplicas": self.max_replicas,
            "metrics": [m.to_dict() for m in self.metrics]}
        if self.behavior is not None:
            spec["behavior"] = self.behavior.to_dict()
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(), "spec": spec}


# -- parsing ----------------------------------------------------------------------------------------------

def _quantity(f: Fields, key: str) -> Fraction | None:
    v = f.get(key)
    if v is None:
        return None
    try:
        q = parse_quantity(v)
    except ValueError as exc:
        raise f.error(key, str(exc)) from None
    if q <= 0:
        raise f.error(key, "must be positive")
    return q


def _target(f: Fields, metric_type: str) -> MetricTarget:
    f.reject_unknown({"type", "averageUtilization", "averageValue", "value"})
    ttype = f.str("type", required=True, choices=TARGET_TYPES)
    util = f.int("averageUtilization")
    avg, value = _quantity(f, "averageValue"), _quantity(f, "value")
    if util is not None and util <= 0:
        raise f.error("averageUtilization", "must be greater than 0")
    want = {"Utilization": ("averageUtilization", util), "AverageValue": ("averageValue", avg),
            "Value": ("value", value)}[ttype]
    if want[1] is None:
        raise f.error(want[0], f"must be set when the target type is {ttype}")
    allowed = {"Resource": ("Utilization", "AverageValue"), "ContainerResource": ("Utilization", "AverageValue"),
               "Pods": ("AverageValue",), "Object": ("Value", "AverageValue"),
               "External": ("Value", "AverageValue")}[metric_type]
    if ttype not in allowed:
        raise f.error("type", f"must be {' or '.join(allowed)} for a {metric_type} metric, got {ttype}")
    return MetricTarget(ttype, util if ttype == "Utilization" else None, avg if ttype == "AverageValue" else None,
                        value if ttype == "Value" else None)


def _metric(f: Fields) -> MetricSpec:
    mtype = f.str("type", required=True, choices=METRIC_TYPES)
    key = SOURCE_KEY[mtype]
    others = [k for k in SOURCE_KEY.values() if k != key and f.has(k)]
    if others:
        raise f.error(others[0], f"must populate the given metric source only ({key} for type {mtype})")
    f.reject_unknown({"type", key})
    src = f.map(key)
    if src is None:
        raise f.error(key, f"must populate information for the given metric source (type {mtype})")
    if mtype in ("Resource", "ContainerResource"):
        src.reject_unknown({"name", "target", "container"} if mtype == "ContainerResource" else {"name", "target"})
        name = src.str("name", required=True)
        container = src.str("container", required=mtype == "ContainerResource")
        return MetricSpec(mtype, _target(src.map("target", required=True), mtype), resource=name,
                          container=container)
    src.reject_unknown({"metric", "target", "describedObject"} if mtype == "Object" else {"metric", "target"})
    mf = src.map("metric", required=True)
    mf.reject_unknown({"name", "selector"})
    name = mf.str("name", required=True)
    selector = mf.get("selector")
    described = None
    if mtype == "Object":
        df = src.map("describedObject", required=True)
        df.reject_unknown({"apiVersion", "kind", "name"})
        described = {"apiVersion": df.str("apiVersion", ""), "kind": df.str("kind", required=True),
                     "name": df.str("name", required=True)}
    return MetricSpec(mtype, _target(src.map("target", required=True), mtype), metric=name,
                      selector=dict(selector) if isinstance(selector, dict) else None, described=described)


def _rules(f: Fields | None, default: ScalingRules) -> ScalingRules:
    if f is None:
        return default
    f.reject_unknown({"stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"})
    window = f.int("stabilizationWindowSeconds", default.stabilization_window_seconds, minimum=0,
                   maximum=MAX_STABILIZATION_SECONDS)
    select = f.str("selectPolicy", "Max", choices=("Max", "Min", "Disabled"))
    policies = []
    for i, raw in enumerate(f.list("policies")):
        pf = f.sub(raw, f".policies[{i}]")
        pf.reject_unknown({"type", "value", "periodSeconds"})
        ptype = pf.str("type", required=True, choices=("Pods", "Percent"))
        value = pf.int("value", required=True)
        if value <= 0:
            raise pf.error("value", "must be greater than zero")
        period = pf.int("periodSeconds", required=True)
        if not 0 < period <= MAX_PERIOD_SECONDS:
            raise pf.error("periodSeconds", f"must be greater than zero and less than or equal to "
                                            f"{MAX_PERIOD_SECONDS}")
        policies.append(ScalingPolicy(ptype, value, period))
    if not policies:
        if f.has("policies"):
            raise f.error("policies", "must specify at least one Policy")
        policies = list(default.policies)
    return ScalingRules(tuple(policies), select or "Max", window)


def parse_hpa(doc: Any, source: Source) -> HorizontalPodAutoscaler:
    meta, root = object_fields(doc, source, "HorizontalPodAutoscaler")
    version = root.str("apiVersion", "autoscaling/v2")
    spec = root.map("spec", required=True)
    v1 = version == "autoscaling/v1"
    sf.check_fields(spec, {"scaleTargetRef", "minReplicas", "maxReplicas",
                           *(("targetCPUUtilizationPercentage",) if v1 else ("metrics", "behavior"))})
    ref = spec.map("scaleTargetRef", required=True)
    ref.reject_unknown({"apiVersion", "kind", "name"})
    kind = ref.str("kind", required=True)
    name = ref.str("name", required=True)
    if not kind:
        raise ref.error("kind", "is required")
    if not name:
        raise ref.error("name", "is required")
    min_replicas = spec.int("minReplicas", 1)
    if min_replicas < 1:
        raise spec.error("minReplicas", "must be greater than or equal to 1")
    max_replicas = spec.int("maxReplicas", required=True)
    if max_replicas < 1:
        raise spec.error("maxReplicas", "must be greater than 0")
    if max_replicas < min_replicas:
        raise spec.error("maxReplicas", "must be greater than or equal to `minReplicas`")
    if v1:
        pct = spec.int("targetCPUUtilizationPercentage", DEFAULT_CPU_UTILIZATION)
        if pct < 1:
            raise spec.error("targetCPUUtilizationPercentage", "must be greater than or equal to 1")
        metrics = [MetricSpec("Resource", MetricTarget("Utilization", pct), resource="cpu")]
        behavior = None
    else:
        metrics = [_metric(spec.sub(raw, f".metrics[{i}]")) for i, raw in enumerate(spec.list("metrics"))]
        if not metrics:
            metrics = [MetricSpec("Resource", MetricTarget("Utilization", DEFAULT_CPU_UTILIZATION), resource="cpu")]
        bf = spec.map("behavior")
        behavior = None
        if bf is not None:
            bf.reject_unknown({"scaleUp", "scaleDown"})
            behavior = Behavior(_rules(bf.map("scaleUp"), default_scale_up()),
                                _rules(bf.map("scaleDown"), default_scale_down()))
    return HorizontalPodAutoscaler(meta=meta, target_kind=kind, target_name=name,
                                   target_api_version=ref.str("apiVersion", "") or "", max_replicas=max_replicas,
                                   min_replicas=min_replicas, metrics=tuple(metrics), behavior=behavior)
