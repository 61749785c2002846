"""The control-plane timeline: who did what to which object, when, and how long it took.

Each Event names its actor the way the Kubernetes primer tells the story: `scheduler`, `controller/<name>`
(replicaset, deployment, daemonset, statefulset, job, cronjob, endpointslice, node-lifecycle,
garbage-collector), `kubelet/<node>`, `cni/<node>`, `kube-proxy/<node>`. Reasons follow Kubernetes' own
event reasons where one exists (Scheduled, FailedScheduling, SuccessfulCreate, SuccessfulDelete,
ScalingReplicaSet, Killing, Completed, BackoffLimitExceeded, SawCompletedJob...) plus netsim's data-plane
steps (SandboxCreated, CNIAdd, CNIDel, EndpointsUpdated, ProxySynced).

Events are stored in the store's append-only events table (not as objects), numbered by a sequence of their
own; `watch_events` follows it as `kubectl get events -w` would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from netsim.store import Store


@dataclass(frozen=True)
class Event:
    time: float  # seconds since the epoch (the control plane's clock)
    actor: str  # scheduler | controller/<name> | kubelet/<node> | cni/<node> | kube-proxy/<node>
    object: str  # "Kind ns/name"
    reason: str
    message: str = ""
    duration_ms: float | None = None
    type: str = "Normal"  # Normal | Warning, as Kubernetes events
    seq: int | None = None  # set when read back from the store

    def to_record(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("seq")
        return out

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Event:
        return cls(time=rec["time"], actor=rec["actor"], object=rec["object"], reason=rec["reason"],
                   message=rec.get("message", ""), duration_ms=rec.get("duration_ms"),
                   type=rec.get("type", "Normal"), seq=rec.get("seq"))

    def describe(self) -> str:
        took = f" ({self.duration_ms:.1f} ms)" if self.duration_ms is not None else ""
        return f"{self.actor:<24} {self.reason:<20} {self.object}: {self.message}{took}"


def record(store: Store, *events: Event) -> int:
    """Append events to the timeline; returns the last sequence number."""
    return store.append_events(e.to_record() for e in events)


def list_events(store: Store, since: int = 0, *, object: str | None = None,
                actor_prefix: str | None = None) -> list[Event]:
    """The timeline after sequence `since`, optionally only one object's or one actor's events."""
    out = [Event.from_record(r) for r in store.events_since(since)]
    if object is not None:
        out = [e for e in out if e.object == object]
    if actor_prefix is not None:
        out = [e for e in out if e.actor.startswith(actor_prefix)]
    return out


def watch_events(store: Store, since: int = 0, *, poll: float = 0.05,
                 timeout: float | None = None) -> Iterator[Event]:
    """Yield events as they are appended (from any process), until `timeout` seconds pass (None: never)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        batch = store.events_since(since)
        for rec in batch:
            since = rec["seq"]
            yield Event.from_record(rec)
        if not batch:
            time.sleep(poll)
