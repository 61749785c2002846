"""Which pods an `apply` is waiting for, and why a pod is not ready, in the words the kubelet reports.

`apply` waits for the objects it applied only (kubectl's `apply` does not wait at all; `kubectl rollout
status` and `kubectl wait` wait for the named objects, never for the rest of the cluster): the pods among
them and the pods they own, followed up their controller ownerReferences (Pod -> ReplicaSet -> Deployment,
Pod -> Job -> CronJob, Pod -> StatefulSet/DaemonSet), as the garbage collector's owner graph links them.
A pod that is not ready is explained by its containers' Waiting/Terminated reason and message (what
`kubectl describe pod` shows under State), else by its conditions. Pure functions over stored dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from netsim.controlplane import objects as o

MAX_OWNER_DEPTH = 4  # Pod -> ReplicaSet -> Deployment; Pod -> Job -> CronJob: never deeper in built-in kinds


def owned_pods(pods: Iterable[Mapping[str, Any]], owners: Iterable[Mapping[str, Any]],
               roots: set[str]) -> list[Mapping[str, Any]]:
    """The pods whose uid is in `roots` or whose controller chain (through `owners`, e.g. the ReplicaSets and
    Jobs) reaches an object whose uid is in `roots`."""
    parent = {o.uid(x): (o.controller_ref(x) or {}).get("uid") for x in owners if o.uid(x)}
    out = []
    for pod in pods:
        chain = {o.uid(pod)}
        up = (o.controller_ref(pod) or {}).get("uid")
        while up and len(chain) <= MAX_OWNER_DEPTH:
            chain.add(up)
            up = parent.get(up)
        if chain & roots:
            out.append(pod)
    return out


def _job_pod(pod: Mapping[str, Any]) -> bool:
    return (o.controller_ref(pod) or {}).get("kind") == "Job"


def settled(pod: Mapping[str, Any]) -> bool:
    """Running and Ready, or finished successfully; a Job's failed pod too (the Job controller retries
    with a new pod or fails the Job): nothing more to wait for."""
    if o.phase(pod) == "Succeeded" or (o.phase(pod) == "Failed" and _job_pod(pod)):
        return True
    return o.phase(pod) == "Running" and o.is_ready(pod) and not o.is_terminating(pod)


def hopeless(pod: Mapping[str, Any]) -> bool:
    """The pod cannot become ready without a change: it Failed for good (restartPolicy keeps it down)."""
    return o.phase(pod) == "Failed" and not _job_pod(pod)


def pod_label(pod: Mapping[str, Any]) -> str:
    ns = o.namespace(pod) or "default"
    return f"pod/{o.name(pod)}" + ("" if ns == "default" else f" -n {ns}")


def why_not_ready(pod: Mapping[str, Any]) -> str:
    """One line: `pod/web-x: container app: CrashLoopBackOff (back-off 10s restarting failed container ...)`."""
    status = pod.get("status") or {}
    reasons = []
    for cs in list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        if "waiting" in state:
            w = state["waiting"] or {}
            text = w.get("reason") or "Waiting"
            reasons.append(f"container {cs.get('name')}: {text}" + (f" ({w['message']})" if w.get("message") else ""))
        elif "terminated" in state and o.phase(pod) != "Succeeded":
            t = state["terminated"] or {}
            detail = f"exit code {t.get('exitCode')}" + (f": {t['message']}" if t.get("message") else "")
            reasons.append(f"container {cs.get('name')}: {t.get('reason') or 'Terminated'} ({detail})")
    if not reasons:
        for typ in ("PodScheduled", "PodReadyToStartContainers", "Ready"):
            c = o.condition(pod, typ)
            if c is not None and c.get("status") == "False" and (c.get("reason") or c.get("message")):
                reasons.append(": ".join(x for x in (c.get("reason"), c.get("message")) if x))
                break
    if not reasons:
        if o.is_terminating(pod):
            reasons.append("Terminating")
        elif not o.node_name(pod):
            reasons.append("Pending: not scheduled yet")
        elif not status.get("podIP"):
            reasons.append("ContainerCreating")
        elif o.phase(pod) == "Running":
            probed = [c["name"] for c in (pod.get("spec") or {}).get("containers") or [] if c.get("readinessProbe")]
            reasons.append(f"containers not ready ({'readiness probe not passed: ' + ', '.join(probed) if probed else 'starting'})")
        else:
            reasons.append(o.phase(pod) or "Pending")
    return f"{pod_label(pod)}: {'; '.join(reasons)}"


def summary(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    return [why_not_ready(p) for p in sorted(pods, key=o.key)]
