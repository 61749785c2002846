"""Stored objects that do not parse, reported on themselves.

A controller reads its objects typed (the store's parse cache); one whose stored version does not parse
(written around validation: clients' writes are validated as they are applied) is left out of its pass, so
one bad object never stops the rest. Left at that, it would only be logged. The project's rule is that a
failure stays local to the object and visible on it, as the real controllers report what they cannot
reconcile on the object (e.g. the ReplicaSet controller's FailedCreate, the EndpointSlice controller's
FailedToUpdateEndpointSlices events, pkg/controller's recorder.Eventf): here a Warning event `FailedParse`
on the object, from the controller that skips it, naming the field, once per resourceVersion (the parse
cache decodes a version once, and queues its failure once: `ObjectCache.take_failures`), not every pass.
"""

from __future__ import annotations

from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.model.errors import SpecError

REASON = "FailedParse"

# the kinds whose controllers skip a version that does not parse -> that controller (the event's actor)
REPORTED: dict[str, str] = {
    "Deployment": "controller/deployment",
    "ReplicaSet": "controller/replicaset",
    "DaemonSet": "controller/daemonset",
    "StatefulSet": "controller/statefulset",
    "Job": "controller/job",
    "CronJob": "controller/cronjob",
    "Service": "controller/endpointslice",
    "Node": "controller/node-lifecycle",
    "HorizontalPodAutoscaler": "controller/horizontal-pod-autoscaler",
    "PodDisruptionBudget": "controller/disruption",
    "KnativeService": "controller/knative-serving",
}


def _message(error: Exception) -> str:
    """The error without the `<store>` source (the event names the object): `field spec.replicas: ...`."""
    if isinstance(error, SpecError):
        where = f"field {error.field}: " if error.field else ""
        return f"stored object does not parse: {where}{error.message}"[:1000]
    return f"stored object does not parse: {error}"[:1000]


def reconcile_parse_failures(snap: Snapshot, ctx: Context) -> list[Action]:
    """An event-only action per version that failed to decode since the last pass (by any reader of this
    process's parse cache), when that version is still the stored one."""
    if ctx.feed is None:
        return []
    actions = []
    for (kind, ns, name), rv, error in ctx.feed.object_cache().take_failures():
        actor = REPORTED.get(kind)
        if actor is None:
            continue  # a Pod's is reported by its kubelet; kinds no controller reads are not skipped by any
        cur = _stored_at(snap, kind, ns or None, name, rv)
        if cur is None:
            continue  # gone or replaced since: a newer version that fails is reported on its own
        actions.append(Action("event", cur, Event(ctx.now, actor, o.ref(cur), REASON, _message(error),
                                                  type="Warning")))
    return actions


def _stored_at(snap: Snapshot, kind: str, ns: str | None, name: str, rv: int) -> dict[str, Any] | None:
    """The stored row of the version that failed, if it is still the current one (it has no typed object)."""
    cur = snap.get(kind, ns, name)
    if cur is None or str((cur.get("metadata") or {}).get("resourceVersion")) != str(rv):
        return None
    return cur
