"""policy/v1 PodDisruptionBudget: what the disruption controller (netsim.controlplane.disruption) keeps
current and the eviction subresource (netsim.apiserver.eviction) consults.

Validation as kube-apiserver's (pkg/apis/policy/validation/validation.go ValidatePodDisruptionBudgetSpec):
`minAvailable` and `maxUnavailable` not both set; each an int-or-percent that is a non-negative integer
or a percent string (apps validation ValidatePositiveIntOrPercent: a string must be digits and "%", so
"5" as a string is refused) of at most 100% (IsNotMoreThan100Percent); `selector` a valid label selector
(metav1 validation ValidateLabelSelector; policy/v1 keeps nil and empty apart: nil selects no pod, `{}`
every pod of the namespace); `unhealthyPodEvictionPolicy` IfHealthyBudget or AlwaysAllow (unset: the
eviction API behaves as IfHealthyBudget; the API server does not default it). No defaults are applied
(policy/v1 has none for the spec).

Status is the disruption controller's report, read leniently as every status (netsim.model.status).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.errors import Source
from netsim.model.meta import ObjectMeta
from netsim.model.pod import object_fields
from netsim.model.selectors import LabelSelector, parse_selector
from netsim.model.status import Condition, _condition, _conditions, _count, _generation, _mapping

UNHEALTHY_POD_EVICTION_POLICIES = ("IfHealthyBudget", "AlwaysAllow")

IntOrPercent = int | str


@dataclass(frozen=True)
class PodDisruptionBudgetStatus:
    """policy/v1 PodDisruptionBudgetStatus, as the disruption controller and the eviction API write it."""

    observed_generation: int | None = None
    disrupted_pods: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # pod -> RFC 3339
    disruptions_allowed: int = 0
    current_healthy: int = 0
    desired_healthy: int = 0
    expected_pods: int = 0
    conditions: tuple[Condition, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    def condition(self, type_: str) -> Condition | None:
        return _condition(self.conditions, type_)


def pdb_status(raw: Any) -> PodDisruptionBudgetStatus:
    st = _mapping(raw)
    disrupted = {k: v for k, v in _mapping(st.get("disruptedPods")).items() if isinstance(k, str) and isinstance(v, str)}
    return PodDisruptionBudgetStatus(
        observed_generation=_generation(st.get("observedGeneration")),
        disrupted_pods=MappingProxyType(disrupted), disruptions_allowed=_signed(st.get("disruptionsAllowed")),
        current_healthy=_count(st.get("currentHealthy")), desired_healthy=_count(st.get("desiredHealthy")),
        expected_pods=_count(st.get("expectedPods")), conditions=_conditions(st.get("conditions")), raw=st)


def _signed(v: Any) -> int:
    """disruptionsAllowed as written (the eviction API refuses a negative one, so it must read as such)."""
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


@dataclass(frozen=True)
class PodDisruptionBudget:
    kind: ClassVar[str] = "PodDisruptionBudget"
    api_version: ClassVar[str] = "policy/v1"
    meta: ObjectMeta
    selector: LabelSelector | None = None  # None selects no pod (policy/v1), an empty one every pod
    min_available: IntOrPercent | None = None
    max_unavailable: IntOrPercent | None = None
    unhealthy_pod_eviction_policy: str | None = None  # None: IfHealthyBudget
    status: PodDisruptionBudgetStatus = PodDisruptionBudgetStatus()

    @property
    def eviction_policy(self) -> str:
        return self.unhealthy_pod_eviction_policy or "IfHealthyBudget"

    def selects(self, labels: Mapping[str, str] | None) -> bool:
        return self.selector is not None and self.selector.matches(labels)

    def to_dict(self) -> dict[str, Any]:
        spec = sf.drop_none({"minAvailable": self.min_available, "maxUnavailable": self.max_unavailable,
                             "unhealthyPodEvictionPolicy": self.unhealthy_pod_eviction_policy})
        if self.selector is not None:  # an empty selector ({}: every pod) is kept apart from none
            spec["selector"] = self.selector.to_dict()
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(), "spec": spec}


def parse_pdb(doc: Any, source: Source) -> PodDisruptionBudget:
    meta, root = object_fields(doc, source, "PodDisruptionBudget")
    spec = root.map("spec") or root.sub({}, "spec")
    sf.check_fields(spec, {"minAvailable", "maxUnavailable", "selector", "unhealthyPodEvictionPolicy"})
    # ValidatePositiveIntOrPercent and IsNotMoreThan100Percent (pkg/apis/policy/validation).
    min_available = sf.int_or_percent(spec, "minAvailable", None, max_percent=100)
    max_unavailable = sf.int_or_percent(spec, "maxUnavailable", None, max_percent=100)
    if min_available is not None and max_unavailable is not None:
        raise spec.error(None, "minAvailable and maxUnavailable cannot be both set")
    raw_sel = spec.data.get("selector")
    selector = None if raw_sel is None else parse_selector(raw_sel, source=source, obj=root.obj,
                                                           path=spec._p("selector"))
    policy = spec.str("unhealthyPodEvictionPolicy", choices=UNHEALTHY_POD_EVICTION_POLICIES)
    return PodDisruptionBudget(meta=meta, selector=selector, min_available=min_available,
                               max_unavailable=max_unavailable, unhealthy_pod_eviction_policy=policy,
                               status=pdb_status(doc.get("status")))
