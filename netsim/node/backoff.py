"""The kubelet's container restart back-off (CrashLoopBackOff), as pure logic.

The kubelet keeps one `flowcontrol.Backoff` (client-go util/flowcontrol/backoff.go) for container restarts,
made in pkg/kubelet/kubelet.go with backOffPeriod 10 s and MaxContainerBackOff 300 s; kuberuntime's
doBackOff (kuberuntime_manager.go) asks `IsInBackOffSince(key, finishedAt)` before restarting an exited
container and, when it may restart, calls `Next(key, now)`. So the first restart is immediate, the next
waits 10 s after the exit, then 20, 40 ... 300 s; an entry untouched for 2 x 300 s (10 min) has expired
and the count starts again from 10 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netsim.node.podkeyed import PodKeyed

INITIAL = 10.0
MAXIMUM = 300.0


@dataclass
class _Entry:
    backoff: float
    last_update: float


@dataclass
class RestartBackoff:
    initial: float = INITIAL
    maximum: float = MAXIMUM
    _entries: PodKeyed[object, _Entry] = field(default_factory=PodKeyed)

    def _expired(self, now: float, entry: _Entry) -> bool:
        return now - entry.last_update > 2 * self.maximum

    def remaining(self, key: object, finished: float, now: float) -> float:
        """Seconds the container that exited at `finished` must still wait (IsInBackOffSince); 0: restart."""
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            return 0.0
        return max(0.0, entry.backoff - (now - finished))

    def current(self, key: object) -> float:
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def next(self, key: object, now: float) -> None:
        """A restart happens now (Next): the following one waits twice as long, up to the maximum."""
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            self._entries[key] = _Entry(self.initial, now)
        else:
            self._entries[key] = _Entry(min(entry.backoff * 2, self.maximum), now)

    def forget(self, prefix: str) -> None:
        """Drop a pod's entries (keys are (pod key, container))."""
        self._entries.forget(prefix)
