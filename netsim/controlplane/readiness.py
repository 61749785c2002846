"""Which pods an `apply` is waiting for, and why a pod is not ready, in the words the kubelet reports.

`apply` waits for the objects it applied only (kubectl's `apply` does not wait at all; `kubectl rollout
status` and `kubectl wait` wait for the named objects, never for the rest of the cluster): the pods among
them and the pods they own, followed up their controller ownerReferences (Pod -> ReplicaSet -> Deployment,
Pod -> Job -> CronJob, Pod -> StatefulSet/DaemonSet), as the garbage collector's owner graph links them.
A pod that is not ready is explained by its containers' Waiting/Terminated reason and message (what
`kubectl describe pod` shows under State), else by its conditions. Pure functions over typed objects
(netsim.model: Pod, ReplicaSet, Job; decoded by the store's parse cache, `Store.typed_list`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from netsim.controlplane import podstate as ps
from netsim.model.pod import Pod

MAX_OWNER_DEPTH = 4  # Pod -> ReplicaSet -> Deployment; Pod -> Job -> CronJob: never deeper in built-in kinds


def _owner_uid(obj: Any) -> str | None:
    return (ps.controller_ref(obj) or {}).get("uid")


def owned_pods(pods: Iterable[Pod], owners: Iterable[Any], roots: set[str]) -> list[Pod]:
    """The pods whose uid is in `roots` or whose controller chain (through `owners`, e.g. the typed
    ReplicaSets and Jobs) reaches an object whose uid is in `roots`."""
    parent = {x.meta.uid: _owner_uid(x) for x in owners if x.meta.uid}
    out = []
    for pod in pods:
        chain = {pod.meta.uid}
        up = _owner_uid(pod)
        while up and len(chain) <= MAX_OWNER_DEPTH:
            chain.add(up)
            up = parent.get(up)
        if chain & roots:
            out.append(pod)
    return out


def _job_pod(pod: Pod) -> bool:
    return (ps.controller_ref(pod) or {}).get("kind") == "Job"


def settled(pod: Pod) -> bool:
    """Running and Ready, or finished successfully; a Job's failed pod too (the Job controller retries
    with a new pod or fails the Job): nothing more to wait for."""
    phase = ps.phase(pod)
    if phase == "Succeeded" or (phase == "Failed" and _job_pod(pod)):
        return True
    return phase == "Running" and ps.ready(pod) and not ps.terminating(pod)


def hopeless(pod: Pod) -> bool:
    """The pod cannot become ready without a change: it Failed for good (restartPolicy keeps it down)."""
    return ps.phase(pod) == "Failed" and not _job_pod(pod)


def pod_label(pod: Pod) -> str:
    ns = pod.meta.namespace or "default"
    return f"pod/{pod.meta.name}" + ("" if ns == "default" else f" -n {ns}")


def why_not_ready(pod: Pod) -> str:
    """One line: `pod/web-x: container app: CrashLoopBackOff (back-off 10s restarting failed container ...)`."""
    phase = ps.phase(pod)
    reasons = []
    for cs in pod.status.container_states:
        if cs.state == "waiting":
            text = cs.reason or "Waiting"
            reasons.append(f"container {cs.name}: {text}" + (f" ({cs.message})" if cs.message else ""))
        elif cs.state == "terminated" and phase != "Succeeded":
            detail = f"exit code {cs.exit_code}" + (f": {cs.message}" if cs.message else "")
            reasons.append(f"container {cs.name}: {cs.reason or 'Terminated'} ({detail})")
    if not reasons:
        for typ in ("PodScheduled", "PodReadyToStartContainers", "Ready"):
            c = pod.status.condition(typ)
            if c is not None and c.status == "False" and (c.reason or c.message):
                reasons.append(": ".join(x for x in (c.reason, c.message) if x))
                break
    if not reasons:
        if ps.terminating(pod):
            reasons.append("Terminating")
        elif not pod.spec.node_name:
            reasons.append("Pending: not scheduled yet")
        elif not pod.status.pod_ip:
            reasons.append("ContainerCreating")
        elif phase == "Running":
            probed = [c.name for c in pod.spec.containers if c.readiness_probe is not None]
            reasons.append(f"containers not ready ({'readiness probe not passed: ' + ', '.join(probed) if probed else 'starting'})")
        else:
            reasons.append(phase)
    return f"{pod_label(pod)}: {'; '.join(reasons)}"


def summary(pods: Iterable[Pod]) -> list[str]:
    return [why_not_ready(p) for p in sorted(pods, key=lambda p: p.meta.key)]
