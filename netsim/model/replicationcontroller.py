"""core/v1 ReplicationController: stored, not run (netsim has no ReplicationController controller); typed
for what reads it, the disruption controller's expected scale (getExpectedScale's RC finder).

Defaults as pkg/apis/core/v1/defaults.go SetDefaults_ReplicationController: with template labels, an
empty `selector` becomes them and so do empty object labels; `replicas` 1. Validation as
pkg/apis/core/validation/validation.go ValidateReplicationControllerSpec: minReadySeconds and replicas
non-negative; `selector` a non-empty plain map (ValidateNonEmptySelector: "Required value"); `template`
required (ValidatePodTemplateSpecForRC), its labels matched by the selector ("`selector` does not match
template `labels`"), its restartPolicy Always, no activeDeadlineSeconds; the pod template validated as
every pod template is (netsim.model.pod).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.errors import Source
from netsim.model.limits import MAX_REPLICAS
from netsim.model.meta import ObjectMeta
from netsim.model.pod import PodTemplate, object_fields, parse_pod_template
from netsim.model.status import WorkloadStatus, workload_status


@dataclass(frozen=True)
class ReplicationController:
    kind: ClassVar[str] = "ReplicationController"
    api_version: ClassVar[str] = "v1"
    meta: ObjectMeta
    selector: dict[str, str]  # a plain map (equality only), unlike apps/v1's LabelSelector
    template: PodTemplate
    replicas: int = 1
    min_ready_seconds: int = 0
    status: WorkloadStatus = WorkloadStatus()  # replicas, fullyLabeled, ready, available, observedGeneration

    def selects(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(labels.get(k) == v for k, v in self.selector.items())

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"replicas": self.replicas, "selector": dict(self.selector),
                                "template": self.template.to_dict()}
        if self.min_ready_seconds:
            spec["minReadySeconds"] = self.min_ready_seconds
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(), "spec": spec}


def parse_replicationcontroller(doc: Any, source: Source) -> ReplicationController:
    meta, root = object_fields(doc, source, "ReplicationController")
    spec = root.map("spec", required=True)
    sf.check_fields(spec, {"replicas", "selector", "template", "minReadySeconds"})
    min_ready = spec.int("minReadySeconds", 0, minimum=0)
    replicas = spec.int("replicas", 1, minimum=0, maximum=MAX_REPLICAS)
    selector = sf.str_map(spec, "selector")
    tf = spec.map("template")
    if tf is None:
        raise spec.error("template", "Required value")
    template = parse_pod_template(tf)
    if template.labels:  # SetDefaults_ReplicationController
        selector = selector or dict(template.labels)
        if not meta.labels:
            meta = replace(meta, labels=dict(template.labels))
    if not selector:
        raise spec.error("selector", "Required value")
    if any(template.labels.get(k) != v for k, v in selector.items()):
        raise spec.error("template.metadata.labels", f"`selector` does not match template `labels` "
                                                     f"(selector {selector}, labels {template.labels})")
    if template.spec.restart_policy != "Always":
        raise spec.error("template.spec.restartPolicy",
                         f'Unsupported value: "{template.spec.restart_policy}": supported values: "Always"')
    if template.spec.extra.get("activeDeadlineSeconds") is not None:
        raise spec.error("template.spec.activeDeadlineSeconds",
                         "activeDeadlineSeconds in ReplicationController is not Supported")
    return ReplicationController(meta=meta, selector=selector, template=template, replicas=replicas,
                                 min_ready_seconds=min_ready, status=workload_status(doc.get("status")))
