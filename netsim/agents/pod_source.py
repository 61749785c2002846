"""The kubelets' pod source and pod work queue: which pods a pass works on.

A real kubelet does not walk every pod on every loop. Its apiserver config source delivers ADD/UPDATE/DELETE
per pod bound to its node (pkg/kubelet/config/apiserver.go, merged in config.go), each of which dispatches a
sync of that one pod to its pod worker (pkg/kubelet/kubelet.go syncLoopIteration: configCh); a pod is synced
again later when its work queue item falls due (syncCh every second takes `getPodsToSync`, the pods whose
resync or back-off time has come: pkg/kubelet/util/queue/work_queue.go), when the PLEG reports one of its
containers changed (plegCh), or when a probe result changes; housekeeping (HandlePodCleanups: orphans,
vanished sandboxes) runs every `housekeepingPeriod` = 2 s over what the kubelet holds.

`PodSource` is that for every node of the cluster: it reads the Pod change log (netsim.agents.changes) and
keeps the newest object of each pod, enqueues each changed pod at once, and hands out the pods whose time
has come (`take_due`); whoever syncs a pod decides when it is due again (`enqueue`). The work of a pass is
the pods that changed or fell due, not every pod.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from typing import Any

from netsim.agents.changes import ChangeTracker
from netsim.agents.podread import Decode, typed_pod
from netsim.controlplane import podstate as ps
from netsim.model.pod import Pod
from netsim.store import Store

# pkg/kubelet/kubelet.go: housekeepingPeriod = time.Second * 2.
HOUSEKEEPING_PERIOD = 2.0


class PodSource:
    """The pods of the cluster as the kubelets know them, and when each is next to be synced."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic, decode: Decode | None = None):
        self.tracker = ChangeTracker(store, {"Pod"})
        # The typed Pod of each version: the store's parse cache, shared with the kubelet and controllers.
        self.decode: Decode = decode or store.decode
        self.clock = clock
        self.pods: dict[str, dict[str, Any]] = {}  # "ns/name" -> the newest object
        self._due: dict[str, float] = {}  # "ns/name" -> when it is next to be synced
        self._heap: list[tuple[float, str]] = []
        self._housekeeping = 0.0  # when housekeeping is next due
        self.deleted: set[str] = set()  # pods gone since the last `take_deleted`
        # Pods not Running and Ready (or being deleted): the only ones convergence can wait for or a failed
        # sandbox can be reported for, kept per change so the marker need not look at every pod each pass.
        self._unsettled: set[str] = set()

    def poll(self) -> set[str]:
        """Take in the changes since the last poll; every pod that changed is due now. Returns their keys."""
        batch = self.tracker.poll()
        if batch.resync:
            present = {f"{ns or 'default'}/{name}" for _, ns, name in batch.objects}
            for key in [k for k in self.pods if k not in present]:
                self._forget(key)
        changed = set()
        for (_, ns, name), obj in batch.objects.items():
            key = f"{ns or 'default'}/{name}"
            if obj is None:
                if key in self.pods:
                    self._forget(key)
                continue
            self.pods[key] = obj
            if _settled(typed_pod(self.decode, obj)):
                self._unsettled.discard(key)
            else:
                self._unsettled.add(key)
            self.deleted.discard(key)
            changed.add(key)
            self.enqueue(key, 0.0)
        return changed

    def _forget(self, key: str) -> None:
        self.pods.pop(key, None)
        self._unsettled.discard(key)
        self._due.pop(key, None)
        self.deleted.add(key)

    def enqueue(self, key: str, delay: float) -> None:
        """Sync `key` again in `delay` seconds (or sooner, if it is already due sooner)."""
        at = self.clock() + max(0.0, delay)
        cur = self._due.get(key)
        if cur is not None and cur <= at:
            return
        self._due[key] = at
        heapq.heappush(self._heap, (at, key))

    def enqueue_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.enqueue(key, 0.0)

    def take_due(self) -> list[dict[str, Any]]:
        """The pods due now (each handed out once; enqueue it again for another sync)."""
        now = self.clock()
        out = []
        while self._heap and self._heap[0][0] <= now:
            at, key = heapq.heappop(self._heap)
            if self._due.get(key) != at:
                continue  # superseded by an earlier enqueue, or forgotten
            del self._due[key]
            pod = self.pods.get(key)
            if pod is not None:
                out.append(pod)
        return out

    def next_due(self) -> float | None:
        """When the next pod falls due (clock time), None when none is queued."""
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def housekeeping_due(self) -> bool:
        """True once per HOUSEKEEPING_PERIOD (then the caller does its housekeeping)."""
        now = self.clock()
        if now < self._housekeeping:
            return False
        self._housekeeping = now + HOUSEKEEPING_PERIOD
        return True

    def take_deleted(self) -> set[str]:
        out, self.deleted = self.deleted, set()
        return out

    def current(self) -> list[dict[str, Any]]:
        """Every pod as of now (the change log read up to now first)."""
        self.poll()
        return list(self.pods.values())

    def unsettled(self) -> list[dict[str, Any]]:
        """The pods as of now that are not Running and Ready, or are being deleted (what
        netsim.controlplane.loop's pending_pods and failed_pods can name): with every pod settled, none."""
        self.poll()
        return [self.pods[k] for k in sorted(self._unsettled)]


def _settled(pod: Pod) -> bool:
    """Running, Ready and not being deleted: neither pending nor failed, whatever its node."""
    return not ps.terminating(pod) and ps.phase(pod) == "Running" and pod.status.ready


__all__ = ["HOUSEKEEPING_PERIOD", "PodSource"]
