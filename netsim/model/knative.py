"""A subset of Knative Serving: the `serving.knative.dev/v1` Service, validated and defaulted as Knative's
webhook does, and the autoscaler's cluster-wide configuration (the `config-autoscaler` ConfigMap).

netsim keys stored objects by kind, and a Knative Service is named like the core Service it makes, so it is
stored as kind `KnativeService` (apply takes `apiVersion: serving.knative.dev/v1, kind: Service`;
`netsim get ksvc` lists them).

What is read (knative/serving pkg/apis/serving/v1/service_types.go, revision_types.go):
- spec.template.metadata (labels, annotations) and spec.template.spec: a PodSpec (validated as a Pod's)
  plus `containerConcurrency` (0..1000, 0 = unlimited) and `timeoutSeconds` (default 300,
  config-defaults revision-timeout-seconds); one container with at most one port, containerPort
  default 8080 (pkg/apis/serving/k8s_validation.go validateContainerPorts; the default user port).
- the autoscaling annotations on spec.template.metadata, validated as pkg/apis/autoscaling/
  annotation_validation.go does: `autoscaling.knative.dev/target` (>= 0.01), `min-scale`/`max-scale`
  (integers >= 0, max >= min unless 0 = unlimited; also the older `minScale`/`maxScale`), `window` (6 s to
  1 h, whole seconds: WindowMin/WindowMax), `metric` (concurrency | rps), `initial-scale` (>= 1: the
  cluster does not allow zero initial scale, its default), `target-utilization-percentage` (1..100),
  `scale-to-zero-pod-retention-period` (0 to 1 h), `class` (only kpa.autoscaling.knative.dev is emulated).
- spec.traffic: only the default (100 % to the latest revision) is emulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.errors import Source, SpecError
from netsim.model.kubeproxy import parse_duration
from netsim.model.meta import Fields, ObjectMeta
from netsim.model.pod import object_fields, parse_pod_template

API_VERSION = "serving.knative.dev/v1"
MANIFEST_KIND = "Service"  # what users write
KIND = "KnativeService"  # how netsim stores it
GROUP = "autoscaling.knative.dev"
KPA_CLASS = "kpa.autoscaling.knative.dev"
WINDOW_MIN, WINDOW_MAX = 6.0, 3600.0  # autoscaling.WindowMin / WindowMax
TARGET_MIN = 0.01  # autoscaling.TargetMin
DEFAULT_PORT = 8080  # the user container's port when it names none
DEFAULT_TIMEOUT = 300  # config-defaults revision-timeout-seconds
MAX_CONTAINER_CONCURRENCY = 1000  # config-defaults container-concurrency-max-limit


def ann(name: str) -> str:
    return f"{GROUP}/{name}"


# Every annotation key read, with the older camelCase spelling Knative still accepts (kmap.KeyPriority).
KEYS: dict[str, tuple[str, ...]] = {
    "target": (ann("target"),), "metric": (ann("metric"),), "class": (ann("class"),),
    "min-scale": (ann("min-scale"), ann("minScale")), "max-scale": (ann("max-scale"), ann("maxScale")),
    "initial-scale": (ann("initial-scale"), ann("initialScale")), "window": (ann("window"),),
    "target-utilization-percentage": (ann("target-utilization-percentage"),),
    "scale-to-zero-pod-retention-period": (ann("scale-to-zero-pod-retention-period"),),
}


@dataclass(frozen=True)
class ScalingSettings:
    """The revision's autoscaling annotations, parsed; None where the cluster default applies."""

    target: float | None = None
    metric: str = "concurrency"
    min_scale: int = 0
    max_scale: int = 0  # 0: unlimited
    initial_scale: int = 1
    window: float | None = None
    target_utilization: float | None = None  # a fraction
    retention: float = 0.0


@dataclass(frozen=True)
class KnativeService:
    kind: ClassVar[str] = KIND
    api_version: ClassVar[str] = API_VERSION
    meta: ObjectMeta
    template: dict[str, Any]  # spec.template as written and defaulted
    port: int = DEFAULT_PORT
    container_concurrency: int = 0
    timeout_seconds: int = DEFAULT_TIMEOUT
    scaling: ScalingSettings = field(default_factory=ScalingSettings)

    def to_dict(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(),
                "spec": {"template": self.template, "traffic": [{"latestRevision": True, "percent": 100}]}}


# -- the annotations ----------------------------------------------------------------------------------

def _lookup(annotations: dict[str, str], name: str) -> tuple[str, str] | None:
    for key in KEYS[name]:
        if key in annotations:
            return key, annotations[key]
    return None


def _duration(f: Fields, key: str, raw: str, lo: float, hi: float) -> float:
    try:
        d = parse_duration(raw)
    except ValueError:
        raise f.error(key, f"invalid value: {raw}") from None
    if d < lo or d > hi:
        raise f.error(key, f"expected {lo:g}s <= {raw} <= {hi:g}s")
    return d


def _int_ge0(f: Fields, key: str, raw: str) -> int:
    try:
        v = int(raw, 10)
    except ValueError:
        raise f.error(key, f"invalid value: {raw}") from None
    if v < 0 or v > 2**31 - 1:
        raise f.error(key, f"expected 0 <= {raw} <= 2147483647")
    return v


def _float(f: Fields, key: str, raw: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise f.error(key, f"invalid value: {raw}") from None
    if not math.isfinite(v):
        raise f.error(key, f"invalid value: {raw}")
    return v


def parse_scaling(annotations: dict[str, str], f: Fields) -> ScalingSettings:
    """The autoscaling annotations (`f`: the annotations' Fields, so errors name the key)."""
    kw: dict[str, Any] = {}
    if (hit := _lookup(annotations, "class")) and hit[1] != KPA_CLASS:
        raise f.error(hit[0], f"{hit[1]!r}: netsim emulates the {KPA_CLASS} autoscaler only")
    if hit := _lookup(annotations, "metric"):
        if hit[1] not in ("concurrency", "rps"):
            raise f.error(hit[0], f"invalid value: {hit[1]} (concurrency or rps for the KPA)")
        kw["metric"] = hit[1]
    if hit := _lookup(annotations, "target"):
        v = _float(f, hit[0], hit[1])
        if v < TARGET_MIN:
            raise f.error(hit[0], f"target {hit[1]} should be at least {TARGET_MIN:g}")
        kw["target"] = v
    if hit := _lookup(annotations, "target-utilization-percentage"):
        v = _float(f, hit[0], hit[1])
        if not 1 <= v <= 100:
            raise f.error(hit[0], f"expected 1 <= {hit[1]} <= 100")
        kw["target_utilization"] = v / 100.0
    lo = _int_ge0(f, hit[0], hit[1]) if (hit := _lookup(annotations, "min-scale")) else 0
    hi_hit = _lookup(annotations, "max-scale")
    hi = _int_ge0(f, hi_hit[0], hi_hit[1]) if hi_hit else 0
    if hi_hit and hi != 0 and hi < lo:
        raise f.error(hi_hit[0], f"max-scale={hi} is less than min-scale={lo}")
    kw["min_scale"], kw["max_scale"] = lo, hi
    if hit := _lookup(annotations, "initial-scale"):
        try:
            v = int(hit[1], 10)
        except ValueError:
            raise f.error(hit[0], f"invalid value: {hit[1]}") from None
        if v < 1:
            raise f.error(hit[0], f"invalid value: {hit[1]} ({hit[0]}=0 not allowed by cluster: "
                                  "allow-zero-initial-scale is false)")
        kw["initial_scale"] = v
    if hit := _lookup(annotations, "window"):
        d = _duration(f, hit[0], hit[1], WINDOW_MIN, WINDOW_MAX)
        if d != int(d):
            raise f.error(hit[0], "must be specified with at most second precision")
        kw["window"] = d
    if hit := _lookup(annotations, "scale-to-zero-pod-retention-period"):
        kw["retention"] = _duration(f, hit[0], hit[1], 0.0, WINDOW_MAX)
    return ScalingSettings(**kw)


# -- the Service ----------------------------------------------------------------------------------------

def parse_knative_service(doc: Any, source: Source) -> KnativeService:
    meta, root = object_fields(doc, source, MANIFEST_KIND)
    spec = root.map("spec", required=True)
    sf.check_fields(spec, {"template", "traffic"})
    for i, raw in enumerate(spec.list("traffic")):
        tf = spec.sub(raw, f".traffic[{i}]")
        tf.reject_unknown({"latestRevision", "percent", "revisionName", "configurationName", "tag", "url"})
        if tf.get("latestRevision") is not True or tf.get("percent", 100) != 100 or tf.has("revisionName"):
            raise tf.error(None, "netsim emulates the default traffic block only: 100 % to the latest revision")
    tf = spec.map("template", required=True)
    sf.check_fields(tf, {"metadata", "spec"})
    tspec = tf.map("spec", required=True)
    knative_keys = {"containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds"}
    concurrency = tspec.int("containerConcurrency", 0, minimum=0, maximum=MAX_CONTAINER_CONCURRENCY)
    timeout = tspec.int("timeoutSeconds", DEFAULT_TIMEOUT, minimum=0, maximum=3600)
    for key in ("responseStartTimeoutSeconds", "idleTimeoutSeconds"):
        tspec.int(key, 0, minimum=0)
    containers = tspec.list("containers", required=True)
    if len(containers) != 1:
        raise tspec.error("containers", f"netsim emulates a revision with exactly one container, got "
                                        f"{len(containers)}")
    c = tspec.sub(containers[0], ".containers[0]")
    if not c.str("image"):
        raise c.error("image", "is required")
    ports = c.list("ports")
    if len(ports) > 1:
        raise c.error("ports", "more than one container port is set (Knative allows one)")
    port = DEFAULT_PORT
    if ports:
        pf = c.sub(ports[0], ".ports[0]")
        port = pf.int("containerPort", DEFAULT_PORT, minimum=1, maximum=65535)
        if pf.str("protocol", "TCP") != "TCP":
            raise pf.error("protocol", "must be TCP (Knative serves HTTP)")
    # Defaulting as Knative's webhook: the container is named user-container, its port named http1.
    container = {"name": "user-container", **dict(containers[0])}
    container["ports"] = [{"name": "http1", "containerPort": port, "protocol": "TCP"}]
    pod_spec = {k: v for k, v in tspec.data.items() if k not in knative_keys}
    pod_spec["containers"] = [container]
    md = dict(tf.data.get("metadata") or {})
    template = {"metadata": md, "spec": pod_spec}
    # Validated as a Deployment's pod template would be, errors under spec.template.
    parse_pod_template(spec.sub(template, ".template"))
    annotations = {k: str(v) for k, v in (md.get("annotations") or {}).items()}
    af = Fields(annotations, source=source, obj=root.obj, path="spec.template.metadata.annotations")
    scaling = parse_scaling(annotations, af)
    pod_spec.update({"containerConcurrency": concurrency, "timeoutSeconds": timeout})
    return KnativeService(meta=meta, template=template, port=port, container_concurrency=concurrency,
                          timeout_seconds=timeout, scaling=scaling)


# -- config-autoscaler -----------------------------------------------------------------------------------

CONFIG_NAMESPACE, CONFIG_NAME = "knative-serving", "config-autoscaler"


@dataclass(frozen=True)
class AutoscalerConfig:
    """knative/serving pkg/autoscaler/config/config.go defaultConfig(): the defaults cited there."""

    enable_scale_to_zero: bool = True
    container_concurrency_target_fraction: float = 0.7  # container-concurrency-target-percentage 70
    container_concurrency_target_default: float = 100.0
    rps_target_default: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    stable_window: float = 60.0
    scale_to_zero_grace_period: float = 30.0
    scale_to_zero_pod_retention_period: float = 0.0


_CONFIG_FLOATS = {"container-concurrency-target-percentage": "container_concurrency_target_fraction",
                  "container-concurrency-target-default": "container_concurrency_target_default",
                  "requests-per-second-target-default": "rps_target_default",
                  "max-scale-up-rate": "max_scale_up_rate", "max-scale-down-rate": "max_scale_down_rate",
                  "panic-window-percentage": "panic_window_percentage",
                  "panic-threshold-percentage": "panic_threshold_percentage"}
_CONFIG_DURATIONS = {"stable-window": "stable_window", "scale-to-zero-grace-period": "scale_to_zero_grace_period",
                     "scale-to-zero-pod-retention-period": "scale_to_zero_pod_retention_period"}


def parse_autoscaler_config(data: dict[str, Any] | None) -> AutoscalerConfig:
    """The ConfigMap's data as NewConfigFromMap reads and validates it; ValueError names the bad key."""
    data = data or {}
    kw: dict[str, Any] = {}
    if "enable-scale-to-zero" in data:
        v = str(data["enable-scale-to-zero"]).lower()
        if v not in ("true", "false"):
            raise ValueError(f"enable-scale-to-zero: {data['enable-scale-to-zero']!r} is not a bool")
        kw["enable_scale_to_zero"] = v == "true"
    for key, attr in _CONFIG_FLOATS.items():
        if key in data:
            try:
                kw[attr] = float(data[key])
            except (TypeError, ValueError):
                raise ValueError(f"{key}: {data[key]!r} is not a number") from None
    for key, attr in _CONFIG_DURATIONS.items():
        if key in data:
            try:
                kw[attr] = parse_duration(str(data[key]))
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
    cfg = AutoscalerConfig(**kw)
    frac = cfg.container_concurrency_target_fraction
    if frac > 1.0:  # percentages above 1 are taken as percent (config.go)
        frac /= 100.0
    cfg = AutoscalerConfig(**{**cfg.__dict__, "container_concurrency_target_fraction": frac})
    if cfg.scale_to_zero_grace_period <= 0:
        raise ValueError(f"scale-to-zero-grace-period must be positive, was: {cfg.scale_to_zero_grace_period:g}s")
    if cfg.scale_to_zero_pod_retention_period < 0:
        raise ValueError("scale-to-zero-pod-retention-period cannot be negative")
    if not 0 < frac <= 1:
        raise ValueError(f"container-concurrency-target-percentage = {frac:g} is outside of valid range of (0, 100]")
    if cfg.max_scale_up_rate <= 1 or cfg.max_scale_down_rate <= 1:
        raise ValueError("max-scale-up-rate and max-scale-down-rate must be greater than 1.0")
    if not WINDOW_MIN <= cfg.stable_window <= WINDOW_MAX:
        raise ValueError(f"stable-window = {cfg.stable_window:g}s, must be in [6s; 1h] range")
    if not 1 <= cfg.panic_window_percentage <= 100:
        raise ValueError("panic-window-percentage must be in [1, 100] interval")
    return cfg


def url_for(name: str, namespace: str, domain: str) -> str:
    """The Service's URL: cluster-local, `http://<name>.<namespace>.svc.<domain>` (Knative without a
    configured domain, or with the cluster-local visibility label)."""
    return f"http://{name}.{namespace}.svc.{domain}"


__all__ = ["API_VERSION", "KIND", "KnativeService", "ScalingSettings", "AutoscalerConfig", "SpecError",
           "parse_knative_service", "parse_autoscaler_config", "url_for"]
