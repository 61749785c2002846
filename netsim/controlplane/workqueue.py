"""A controller's work queue over the store's change log: which of its objects a pass syncs.

kube-controller-manager's workload controllers do not walk every object on every loop: their informers'
event handlers put the key of each object an event concerns on a rate-limited work queue
(k8s.io/client-go/util/workqueue; e.g. pkg/controller/replicaset/replica_set.go addPod/updatePod/deletePod
enqueue the pod's controlling ReplicaSet, or for an orphan every ReplicaSet whose selector matches it), and a
worker syncs one key at a time. An object is queued again when its sync failed or asked to be looked at later
(`enqueueRSAfter` for minReadySeconds, `requeueStuckDeployment` for a progress deadline), and every object
once per informer resync period.

`WorkQueue` is that, kept in the controller's memory between passes (`Context.memory`): `take` returns the
keys the changes since the controller's last pass concern (through the controller's own `affected`) plus
those it asked to `retry`, or None for "sync everything" (the first pass, a compacted history, no change
feed, the periodic resync). An idle pass syncs nothing, whatever the size of the cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from netsim.store import Change, Compacted

Key = tuple[str, str]  # (namespace, name)
# Every object is synced at least this often (kube-controller-manager resyncs its informers every
# --min-resync-period to twice that, 12 h by default: cmd/kube-controller-manager ResyncPeriod; here much
# sooner, as a safety net for a time-driven requeue a controller did not ask for). A full sync of a
# 1,000-pod ReplicaSet each minute was the largest part of an idle daemon's controllers after the queues.
RESYNC_SECONDS = 300.0


@dataclass
class WorkQueue:
    rv: int | None = None  # the change-log position taken up to
    resync_at: float = 0.0
    retry: set[Key] = field(default_factory=set)
    synced: int = 0  # objects synced in the last pass (tests and benchmarks count this)

    def reset(self) -> None:
        """Forget the position: the next pass syncs everything (its last pass's work may have been lost)."""
        self.rv = None

    def take(self, ctx: Any, kinds: Collection[str],
             affected: Callable[[list[Change]], set[Key]]) -> set[Key] | None:
        """The keys to sync this pass, or None for every object."""
        feed = ctx.feed
        if feed is None:
            return None
        now_rv = feed.current_rv()
        prev, self.rv = self.rv, now_rv
        retry, self.retry = self.retry, set()
        if prev is None or ctx.now >= self.resync_at:
            self.resync_at = ctx.now + RESYNC_SECONDS
            return None
        try:
            changes = feed.changes_of(kinds, prev)
        except Compacted:
            return None
        return affected(changes) | retry if changes else retry


def queue_of(ctx: Any, name: str) -> WorkQueue:
    """The controller's queue in `ctx.memory` (made on first use)."""
    q = ctx.memory.get(name)
    if not isinstance(q, WorkQueue):
        q = ctx.memory[name] = WorkQueue()
    return q


def reset_queues(memory: dict[str, Any]) -> None:
    """After a pass that rolled back or a controller that raised: every queue syncs everything next."""
    for v in memory.values():
        if isinstance(v, WorkQueue):
            v.reset()


__all__ = ["RESYNC_SECONDS", "WorkQueue", "queue_of", "reset_queues"]
