"""The `status` half of the typed objects: Pod, Node and Service (read by the data plane), Deployment,
ReplicaSet, StatefulSet and DaemonSet (read by the controllers and `rollout status`).

Status is written by the system (kubelets, controllers, the LoadBalancer speaker), never validated as a
client's manifest is: kube-apiserver's status strategies (pkg/registry/core/pod/strategy.go
podStatusStrategy, node/strategy.go nodeStatusStrategy, service/strategy.go serviceStatusStrategy) accept
what the status writer sends. So these readers are lenient: a field of the wrong type reads as absent,
never as an error, and a typed object decoded from the store always has a status (empty when none is
written yet). `raw` keeps the whole status mapping for the fields nobody models (containerStatuses,
nodeInfo, ...), read only.

A client's manifest does not carry status into the store (the API server resets it on create, as
podStrategy.PrepareForCreate does), so `to_dict()` of the typed objects stays the client's manifest and
omits status; `status.raw` is the stored status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


def _mapping(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else _EMPTY


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _items(v: Any) -> list[Mapping[str, Any]]:
    return [x for x in v if isinstance(x, Mapping)] if isinstance(v, list) else []


@dataclass(frozen=True)
class Condition:
    """One entry of `status.conditions` (metav1.Condition's type/status/reason/message/lastTransitionTime)."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None  # RFC 3339, as written (minReadySeconds counts from it)
    # A Node condition's last heartbeat (core/v1 NodeCondition.lastHeartbeatTime): the node lifecycle
    # controller's grace period counts from it. Not part of the condition's identity.
    last_heartbeat_time: str | None = field(default=None, compare=False)

    @property
    def true(self) -> bool:
        return self.status == "True"


def _conditions(raw: Any) -> tuple[Condition, ...]:
    return tuple(Condition(c["type"], c.get("status") if isinstance(c.get("status"), str) else "Unknown",
                           _str(c.get("reason")), _str(c.get("message")), _str(c.get("lastTransitionTime")),
                           _str(c.get("lastHeartbeatTime")))
                 for c in _items(raw) if isinstance(c.get("type"), str))


def _condition(conditions: tuple[Condition, ...], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


@dataclass(frozen=True)
class ContainerState:
    """One entry of status.containerStatuses / initContainerStatuses (core/v1 ContainerStatus), reduced to
    what `kubectl describe pod` shows under State: which state (waiting, running, terminated) and its
    reason, message and exit code."""

    name: str | None
    state: str | None = None  # "waiting" | "running" | "terminated" | None (none reported)
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None


def _container_states(raw: Any) -> tuple[ContainerState, ...]:
    out = []
    for cs in _items(raw):
        st = _mapping(cs.get("state"))
        which = next((k for k in ("waiting", "terminated", "running") if k in st), None)
        detail = _mapping(st.get(which)) if which else _EMPTY
        code = detail.get("exitCode")
        out.append(ContainerState(_str(cs.get("name")), which, _str(detail.get("reason")),
                                  _str(detail.get("message")),
                                  code if isinstance(code, int) and not isinstance(code, bool) else None))
    return tuple(out)


@dataclass(frozen=True)
class PodStatus:
    """What the kubelet reports of a pod (core/v1 PodStatus). `pod_ips` is status.podIPs, falling back to
    status.podIP as the API server's dual-stack defaulting fills one from the other."""

    phase: str | None = None
    pod_ips: tuple[str, ...] = ()
    host_ip: str | None = None
    conditions: tuple[Condition, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=_empty, compare=False, repr=False)

    @property
    def pod_ip(self) -> str | None:
        return self.pod_ips[0] if self.pod_ips else None

    @property
    def ready(self) -> bool:
        """The pod's Ready condition is True (what the EndpointSlice controller reads as `ready`)."""
        c = _condition(self.conditions, "Ready")
        return c is not None and c.true

    def condition(self, type_: str) -> Condition | None:
        return _condition(self.conditions, type_)

    @property
    def container_states(self) -> tuple[ContainerState, ...]:
        """The init containers' states, then the app containers' (read from `raw` when asked: only an
        explanation of a pod that is not ready needs them, so a decode does not pay for them)."""
        return _container_states(self.raw.get("initContainerStatuses")) + \
            _container_states(self.raw.get("containerStatuses"))


def pod_status(raw: Any) -> PodStatus:
    st = _mapping(raw)
    ips = tuple(p["ip"] for p in _items(st.get("podIPs")) if _str(p.get("ip")))
    if not ips and _str(st.get("podIP")):
        ips = (st["podIP"],)
    return PodStatus(phase=_str(st.get("phase")), pod_ips=ips, host_ip=_str(st.get("hostIP")),
                     conditions=_conditions(st.get("conditions")), raw=st)


@dataclass(frozen=True)
class NodeAddress:
    type: str
    address: str


@dataclass(frozen=True)
class NodeStatus:
    """What the kubelet reports of its node (core/v1 NodeStatus): addresses, conditions, capacity."""

    addresses: tuple[NodeAddress, ...] = ()
    conditions: tuple[Condition, ...] = ()
    capacity: Mapping[str, str] = field(default_factory=_empty, compare=False)
    allocatable: Mapping[str, str] = field(default_factory=_empty, compare=False)
    raw: Mapping[str, Any] = field(default_factory=_empty, compare=False, repr=False)

    def address(self, type_: str) -> str | None:
        return next((a.address for a in self.addresses if a.type == type_), None)

    @property
    def internal_ip(self) -> str | None:
        return self.address("InternalIP")

    @property
    def ready(self) -> bool:
        c = _condition(self.conditions, "Ready")
        return c is not None and c.true

    def condition(self, type_: str) -> Condition | None:
        return _condition(self.conditions, type_)


def node_status(raw: Any) -> NodeStatus:
    st = _mapping(raw)
    addresses = tuple(NodeAddress(a["type"], a["address"]) for a in _items(st.get("addresses"))
                      if isinstance(a.get("type"), str) and isinstance(a.get("address"), str))
    return NodeStatus(addresses=addresses, conditions=_conditions(st.get("conditions")),
                      capacity=_mapping(st.get("capacity")), allocatable=_mapping(st.get("allocatable")), raw=st)


@dataclass(frozen=True)
class LoadBalancerIngress:
    """One entry of status.loadBalancer.ingress (core/v1 LoadBalancerIngress)."""

    ip: str | None = None
    hostname: str | None = None
    ip_mode: str | None = None  # VIP | Proxy (kube-proxy skips the ingress IP's rules for Proxy)


@dataclass(frozen=True)
class ServiceStatus:
    """What the LoadBalancer speaker reports of a Service: its ingress points."""

    load_balancer_ingress: tuple[LoadBalancerIngress, ...] = ()
    conditions: tuple[Condition, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=_empty, compare=False, repr=False)

    @property
    def ingress_ips(self) -> tuple[str, ...]:
        return tuple(i.ip for i in self.load_balancer_ingress if i.ip)


def service_status(raw: Any) -> ServiceStatus:
    st = _mapping(raw)
    ingress = tuple(LoadBalancerIngress(_str(i.get("ip")), _str(i.get("hostname")), _str(i.get("ipMode")))
                    for i in _items(_mapping(st.get("loadBalancer")).get("ingress")))
    return ServiceStatus(load_balancer_ingress=ingress, conditions=_conditions(st.get("conditions")), raw=st)


def _count(v: Any) -> int:
    """A replica count as the status writer sent it; anything but a non-negative int reads as 0."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def _generation(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


@dataclass(frozen=True)
class WorkloadStatus:
    """What the workload controllers report of a Deployment, ReplicaSet or StatefulSet: the replica counts
    apps/v1 DeploymentStatus, ReplicaSetStatus and StatefulSetStatus share (k8s.io/api apps/v1 types.go),
    observedGeneration and conditions. Counts a kind does not report read 0 (ReplicaSet has no
    updatedReplicas, Deployment no currentReplicas); written by the controllers through their status
    strategies (pkg/registry/apps/*/strategy.go), so read leniently as the other statuses."""

    replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    unavailable_replicas: int = 0  # Deployment only
    fully_labeled_replicas: int = 0  # ReplicaSet only
    current_replicas: int = 0  # StatefulSet only
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=_empty, compare=False, repr=False)

    def condition(self, type_: str) -> Condition | None:
        return _condition(self.conditions, type_)

    def observed(self, generation: int | None) -> bool:
        """The controller has seen this generation of the spec (kubectl rollout status's first test)."""
        return generation is None or (self.observed_generation or 0) >= generation


def workload_status(raw: Any) -> WorkloadStatus:
    st = _mapping(raw)
    return WorkloadStatus(
        replicas=_count(st.get("replicas")), ready_replicas=_count(st.get("readyReplicas")),
        available_replicas=_count(st.get("availableReplicas")), updated_replicas=_count(st.get("updatedReplicas")),
        unavailable_replicas=_count(st.get("unavailableReplicas")),
        fully_labeled_replicas=_count(st.get("fullyLabeledReplicas")),
        current_replicas=_count(st.get("currentReplicas")),
        observed_generation=_generation(st.get("observedGeneration")),
        conditions=_conditions(st.get("conditions")), raw=st)


@dataclass(frozen=True)
class DaemonSetStatus:
    """What the DaemonSet controller reports (apps/v1 DaemonSetStatus): counts of nodes, not replicas."""

    desired_number_scheduled: int = 0
    current_number_scheduled: int = 0
    number_misscheduled: int = 0
    number_ready: int = 0
    number_available: int = 0
    number_unavailable: int = 0
    updated_number_scheduled: int = 0
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=_empty, compare=False, repr=False)


def daemonset_status(raw: Any) -> DaemonSetStatus:
    st = _mapping(raw)
    return DaemonSetStatus(
        desired_number_scheduled=_count(st.get("desiredNumberScheduled")),
        current_number_scheduled=_count(st.get("currentNumberScheduled")),
        number_misscheduled=_count(st.get("numberMisscheduled")), number_ready=_count(st.get("numberReady")),
        number_available=_count(st.get("numberAvailable")), number_unavailable=_count(st.get("numberUnavailable")),
        updated_number_scheduled=_count(st.get("updatedNumberScheduled")),
        observed_generation=_generation(st.get("observedGeneration")),
        conditions=_conditions(st.get("conditions")), raw=st)


@dataclass(frozen=True)
class JobStatus:
    """What the Job controller reports (batch/v1 JobStatus): when it started and finished, its pod counts
    and its Complete/Failed conditions."""

    start_time: str | None = None  # RFC 3339, as written
    completion_time: str | None = None
    active: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    conditions: tuple[Condition, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=_empty, compare=False, repr=False)

    def condition(self, type_: str) -> Condition | None:
        return _condition(self.conditions, type_)

    @property
    def finished(self) -> str | None:
        """"Complete" or "Failed" when the Job has that condition True (the Job controller's
        IsJobFinished), else None."""
        for typ in ("Complete", "Failed"):
            c = self.condition(typ)
            if c is not None and c.status == "True":
                return typ
        return None


def job_status(raw: Any) -> JobStatus:
    st = _mapping(raw)
    return JobStatus(start_time=_str(st.get("startTime")), completion_time=_str(st.get("completionTime")),
                     active=_count(st.get("active")), ready=_count(st.get("ready")),
                     succeeded=_count(st.get("succeeded")), failed=_count(st.get("failed")),
                     conditions=_conditions(st.get("conditions")), raw=st)


@dataclass(frozen=True)
class CronJobStatus:
    """What the CronJob controller reports (batch/v1 CronJobStatus): the last scheduled and the last
    successful time, and the Jobs it holds active (object references, kept as written)."""

    last_schedule_time: str | None = None  # RFC 3339, as written
    last_successful_time: str | None = None
    active: tuple[Mapping[str, Any], ...] = ()
    raw: Mapping[str, Any] = field(default_factory=_empty, compare=False, repr=False)


def cronjob_status(raw: Any) -> CronJobStatus:
    st = _mapping(raw)
    return CronJobStatus(last_schedule_time=_str(st.get("lastScheduleTime")),
                         last_successful_time=_str(st.get("lastSuccessfulTime")),
                         active=tuple(_items(st.get("active"))), raw=st)
