"""apps/v1 workloads: Deployment, ReplicaSet, DaemonSet, StatefulSet.

Defaults as kubernetes pkg/apis/apps/v1/defaults.go: replicas 1; Deployment strategy RollingUpdate with
maxSurge/maxUnavailable 25%, revisionHistoryLimit 10, progressDeadlineSeconds 600; DaemonSet updateStrategy
RollingUpdate maxUnavailable 1 maxSurge 0; StatefulSet podManagementPolicy OrderedReady, updateStrategy
RollingUpdate partition 0. Validation as pkg/apis/apps/validation: selector required and non-empty and must
match the template labels; template restartPolicy must be Always; maxSurge and maxUnavailable not both zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.errors import Source
from netsim.model.limits import MAX_REPLICAS
from netsim.model.meta import Fields, ObjectMeta
from netsim.model.pod import PodTemplate, object_fields, parse_pod_template
from netsim.model.selectors import LabelSelector, parse_selector
from netsim.model.status import DaemonSetStatus, WorkloadStatus, daemonset_status, workload_status


def _envelope(obj: Any, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj.api_version, "kind": obj.kind, "metadata": obj.meta.to_dict(), "spec": spec}


def parse_selector_and_template(spec: Fields, *, kind: str, restart_policies: tuple[str, ...] = ("Always",),
                                selector_required: bool = True) -> tuple[LabelSelector | None, PodTemplate]:
    """spec.selector and spec.template, checked against each other as apps validation does."""
    raw_sel = spec.get("selector")
    if raw_sel is None and selector_required:
        raise spec.error("selector", "is required")
    selector = None
    if raw_sel is not None:
        selector = parse_selector(raw_sel, source=spec.source, obj=spec.obj, path=spec._p("selector"))
        if selector.empty:
            raise spec.error("selector", f"empty selector is invalid for {kind}")
    template = parse_pod_template(spec.map("template", required=True))
    if selector is not None and not selector.matches(template.labels):
        raise spec.error("template.metadata.labels",
                         f"selector {selector.describe()!r} does not match template labels {template.labels}")
    if template.spec.restart_policy not in restart_policies:
        raise spec.error("template.spec.restartPolicy",
                         f"{template.spec.restart_policy!r} is not supported for {kind}; "
                         f"use {' or '.join(restart_policies)}")
    return selector, template


@dataclass(frozen=True)
class DeploymentStrategy:
    type: str = "RollingUpdate"  # RollingUpdate | Recreate
    max_surge: int | str | None = "25%"  # None for Recreate
    max_unavailable: int | str | None = "25%"

    def to_dict(self) -> dict[str, Any]:
        if self.type == "Recreate":
            return {"type": "Recreate"}
        return {"type": self.type, "rollingUpdate": {"maxSurge": self.max_surge,
                                                     "maxUnavailable": self.max_unavailable}}


@dataclass(frozen=True)
class Deployment:
    kind: ClassVar[str] = "Deployment"
    api_version: ClassVar[str] = "apps/v1"
    meta: ObjectMeta
    selector: LabelSelector
    template: PodTemplate
    replicas: int = 1
    strategy: DeploymentStrategy = DeploymentStrategy()
    revision_history_limit: int = 10
    min_ready_seconds: int = 0
    progress_deadline_seconds: int = 600
    paused: bool = False
    status: WorkloadStatus = WorkloadStatus()  # the controller's report, when decoded from the store

    def to_dict(self) -> dict[str, Any]:
        spec = {"replicas": self.replicas, "selector": self.selector.to_dict(), "template": self.template.to_dict(),
                "strategy": self.strategy.to_dict(), "revisionHistoryLimit": self.revision_history_limit,
                "minReadySeconds": self.min_ready_seconds,
                "progressDeadlineSeconds": self.progress_deadline_seconds}
        if self.paused:
            spec["paused"] = True
        return _envelope(self, spec)


def _parse_deployment_strategy(spec: Fields) -> DeploymentStrategy:
    st = spec.map("strategy")
    if st is None:
        return DeploymentStrategy()
    sf.check_fields(st, {"type", "rollingUpdate"})
    typ = st.str("type", "RollingUpdate", choices=("RollingUpdate", "Recreate"))
    ru = st.map("rollingUpdate")
    if typ == "Recreate":
        if ru is not None:
            raise st.error("rollingUpdate", "may not be specified when strategy type is Recreate")
        return DeploymentStrategy("Recreate", None, None)
    if ru is None:
        return DeploymentStrategy()
    sf.check_fields(ru, {"maxSurge", "maxUnavailable"})
    surge = sf.int_or_percent(ru, "maxSurge", "25%")
    unavailable = sf.int_or_percent(ru, "maxUnavailable", "25%", max_percent=100)
    if sf.is_zero(surge) and sf.is_zero(unavailable):
        raise ru.error("maxUnavailable", "may not be 0 when maxSurge is 0")
    return DeploymentStrategy("RollingUpdate", surge, unavailable)


def parse_deployment(doc: Any, source: Source) -> Deployment:
    meta, root = object_fields(doc, source, "Deployment")
    spec = root.map("spec", required=True)
    sf.check_fields(spec, {"replicas", "selector", "template", "strategy", "minReadySeconds",
                           "revisionHistoryLimit", "paused", "progressDeadlineSeconds"})
    selector, template = parse_selector_and_template(spec, kind="Deployment")
    min_ready = spec.int("minReadySeconds", 0, minimum=0)
    progress = spec.int("progressDeadlineSeconds", 600, minimum=1)
    if progress <= min_ready:
        raise spec.error("progressDeadlineSeconds", "must be greater than minReadySeconds")
    return Deployment(meta=meta, selector=selector, template=template,
                      replicas=spec.int("replicas", 1, minimum=0, maximum=MAX_REPLICAS),
                      strategy=_parse_deployment_strategy(spec),
                      revision_history_limit=spec.int("revisionHistoryLimit", 10, minimum=0),
                      min_ready_seconds=min_ready, progress_deadline_seconds=progress,
                      paused=bool(spec.bool("paused", False)), status=workload_status(doc.get("status")))


@dataclass(frozen=True)
class ReplicaSet:
    kind: ClassVar[str] = "ReplicaSet"
    api_version: ClassVar[str] = "apps/v1"
    meta: ObjectMeta
    selector: LabelSelector
    template: PodTemplate
    replicas: int = 1
    min_ready_seconds: int = 0
    status: WorkloadStatus = WorkloadStatus()

    def to_dict(self) -> dict[str, Any]:
        return _envelope(self, {"replicas": self.replicas, "selector": self.selector.to_dict(),
                                "template": self.template.to_dict(), "minReadySeconds": self.min_ready_seconds})


def parse_replicaset(doc: Any, source: Source) -> ReplicaSet:
    meta, root = object_fields(doc, source, "ReplicaSet")
    spec = root.map("spec", required=True)
    sf.check_fields(spec, {"replicas", "selector", "template", "minReadySeconds"})
    selector, template = parse_selector_and_template(spec, kind="ReplicaSet")
    return ReplicaSet(meta=meta, selector=selector, template=template,
                      replicas=spec.int("replicas", 1, minimum=0, maximum=MAX_REPLICAS),
                      min_ready_seconds=spec.int("minReadySeconds", 0, minimum=0),
                      status=workload_status(doc.get("status")))


@dataclass(frozen=True)
class DaemonSetUpdateStrategy:
    type: str = "RollingUpdate"  # RollingUpdate | OnDelete
    max_unavailable: int | str | None = 1
    max_surge: int | str | None = 0

    def to_dict(self) -> dict[str, Any]:
        if self.type == "OnDelete":
            return {"type": "OnDelete"}
        return {"type": self.type, "rollingUpdate": {"maxUnavailable": self.max_unavailable,
                                                     "maxSurge": self.max_surge}}


@dataclass(frozen=True)
class DaemonSet:
    kind: ClassVar[str] = "DaemonSet"
    api_version: ClassVar[str] = "apps/v1"
    meta: ObjectMeta
    selector: LabelSelector
    template: PodTemplate
    update_strategy: DaemonSetUpdateStrategy = DaemonSetUpdateStrategy()
    min_ready_seconds: int = 0
    revision_history_limit: int = 10
    status: DaemonSetStatus = DaemonSetStatus()

    def to_dict(self) -> dict[str, Any]:
        return _envelope(self, {"selector": self.selector.to_dict(), "template": self.template.to_dict(),
                                "updateStrategy": self.update_strategy.to_dict(),
                                "minReadySeconds": self.min_ready_seconds,
                                "revisionHistoryLimit": self.revision_history_limit})


def parse_daemonset(doc: Any, source: Source) -> DaemonSet:
    meta, root = object_fields(doc, source, "DaemonSet")
    spec = root.map("spec", required=True)
    sf.check_fields(spec, {"selector", "template", "updateStrategy", "minReadySeconds", "revisionHistoryLimit"})
    selector, template = parse_selector_and_template(spec, kind="DaemonSet")
    strategy = DaemonSetUpdateStrategy()
    us = spec.map("updateStrategy")
    if us is not None:
        sf.check_fields(us, {"type", "rollingUpdate"})
        typ = us.str("type", "RollingUpdate", choices=("RollingUpdate", "OnDelete"))
        ru = us.map("rollingUpdate")
        if typ == "OnDelete":
            if ru is not None:
                raise us.error("rollingUpdate", "may not be specified when type is OnDelete")
            strategy = DaemonSetUpdateStrategy("OnDelete", None, None)
        elif ru is not None:
            sf.check_fields(ru, {"maxUnavailable", "maxSurge"})
            mu = sf.int_or_percent(ru, "maxUnavailable", 1, max_percent=100)
            ms = sf.int_or_percent(ru, "maxSurge", 0, max_percent=100)
            if sf.is_zero(mu) and sf.is_zero(ms):
                raise ru.error("maxUnavailable", "may not be 0 when maxSurge is 0")
            strategy = DaemonSetUpdateStrategy("RollingUpdate", mu, ms)
    return DaemonSet(meta=meta, selector=selector, template=template, update_strategy=strategy,
                     min_ready_seconds=spec.int("minReadySeconds", 0, minimum=0),
                     revision_history_limit=spec.int("revisionHistoryLimit", 10, minimum=0),
                     status=daemonset_status(doc.get("status")))


@dataclass(frozen=True)
class StatefulSet:
    kind: ClassVar[str] = "StatefulSet"
    api_version: ClassVar[str] = "apps/v1"
    meta: ObjectMeta
    selector: LabelSelector
    template: PodTemplate
    service_name: str | None = None
    replicas: int = 1
    pod_management_policy: str = "OrderedReady"  # OrderedReady | Parallel
    update_strategy: str = "RollingUpdate"  # RollingUpdate | OnDelete
    partition: int | None = 0  # RollingUpdate only
    revision_history_limit: int = 10
    min_ready_seconds: int = 0
    ordinals_start: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # volumeClaimTemplates etc., carried verbatim
    status: WorkloadStatus = WorkloadStatus()

    def pod_name(self, ordinal: int) -> str:
        return f"{self.meta.name}-{ordinal}"

    def to_dict(self) -> dict[str, Any]:
        us: dict[str, Any] = {"type": self.update_strategy}
        if self.update_strategy == "RollingUpdate":
            us["rollingUpdate"] = {"partition": self.partition}
        spec: dict[str, Any] = sf.drop_none({
            "serviceName": self.service_name, "replicas": self.replicas, "selector": self.selector.to_dict(),
            "template": self.template.to_dict(), "podManagementPolicy": self.pod_management_policy,
            "updateStrategy": us, "revisionHistoryLimit": self.revision_history_limit,
            "minReadySeconds": self.min_ready_seconds})
        if self.ordinals_start:
            spec["ordinals"] = {"start": self.ordinals_start}
        spec.update(self.extra)
        return _envelope(self, spec)


def parse_statefulset(doc: Any, source: Source) -> StatefulSet:
    meta, root = object_fields(doc, source, "StatefulSet")
    spec = root.map("spec", required=True)
    extra = sf.check_fields(spec, {"replicas", "selector", "template", "serviceName", "podManagementPolicy",
                                   "updateStrategy", "revisionHistoryLimit", "minReadySeconds", "ordinals"},
                            {"volumeClaimTemplates", "persistentVolumeClaimRetentionPolicy"})
    selector, template = parse_selector_and_template(spec, kind="StatefulSet")
    typ, partition = "RollingUpdate", 0
    us = spec.map("updateStrategy")
    if us is not None:
        sf.check_fields(us, {"type", "rollingUpdate"})
        typ = us.str("type", "RollingUpdate", choices=("RollingUpdate", "OnDelete"))
        ru = us.map("rollingUpdate")
        if typ == "OnDelete":
            if ru is not None:
                raise us.error("rollingUpdate", "may not be specified when type is OnDelete")
            partition = None
        elif ru is not None:
            sf.check_fields(ru, {"partition"})
            partition = ru.int("partition", 0, minimum=0)
    start = 0
    ordinals = spec.map("ordinals")
    if ordinals is not None:
        sf.check_fields(ordinals, {"start"})
        start = ordinals.int("start", 0, minimum=0)
    return StatefulSet(meta=meta, selector=selector, template=template,
                       service_name=sf.dns_label(spec, "serviceName", what="service name"),
                       replicas=spec.int("replicas", 1, minimum=0, maximum=MAX_REPLICAS),
                       pod_management_policy=spec.str("podManagementPolicy", "OrderedReady",
                                                      choices=("OrderedReady", "Parallel")),
                       update_strategy=typ, partition=partition,
                       revision_history_limit=spec.int("revisionHistoryLimit", 10, minimum=0),
                       min_ready_seconds=spec.int("minReadySeconds", 0, minimum=0),
                       ordinals_start=start, extra=extra, status=workload_status(doc.get("status")))
