"""Restarts of the containers the workload server plays (no `command`), after a failed liveness or startup probe.

Such a container has no process: it "runs" while the workload server serves its ports. When its liveness
(or startup) probe fails `failureThreshold` times the kubelet kills and restarts it (kuberuntime_manager.go
computePodActions; kuberuntime_container.go killContainer). Here the kill closes the ports it serves, and
the restart opens them again, with the kubelet's back-off between restarts (netsim.node.backoff: the first
at once, then 10 s doubling), a restart count and the last termination kept for `lastState` (exit code
137, reason Error: what a container that did not stop on SIGTERM within its grace period reports).
Pure bookkeeping; the daemon does the serving.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from netsim.node.backoff import RestartBackoff

KILLED_EXIT_CODE = 137  # 128 + SIGKILL


@dataclass
class Played:
    started: float
    generation: int = 0
    restarts: int = 0
    down_since: float | None = None  # killed, not restarted yet
    last_terminated: dict[str, Any] | None = None


@dataclass
class PlayedContainers:
    """Kept per pod as well as per (pod, container): `down` and `forget` run for every pod of every pass and
    every new sandbox, so they must not walk the containers of all the other pods (quadratic at 10,000)."""

    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    _state: dict[tuple[str, str], Played] = field(default_factory=dict)
    _by_pod: dict[str, dict[str, Played]] = field(default_factory=dict)

    def get(self, pod_key: str, name: str, started: float) -> Played:
        key = (pod_key, name)
        if key not in self._state:
            self._state[key] = self._by_pod.setdefault(pod_key, {})[name] = Played(started)
        return self._state[key]

    def instance(self, pod_key: str, name: str, started: float) -> tuple[Any, float]:
        """(instance id or None while killed, running since) for the prober."""
        p = self.get(pod_key, name, started)
        return (None if p.down_since is not None else p.generation), p.started

    def kill(self, pod_key: str, name: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        p = self._state.get((pod_key, name))
        if p is None or p.down_since is not None:
            return
        p.down_since = now
        p.last_terminated = {"exitCode": KILLED_EXIT_CODE, "reason": "Error", "startedAt": p.started,
                             "finishedAt": now}

    def restart_wait(self, pod_key: str, name: str, now: float | None = None) -> float:
        """Seconds until a killed container may be restarted (0: now; also 0 for one that runs)."""
        now = time.time() if now is None else now
        p = self._state.get((pod_key, name))
        if p is None or p.down_since is None:
            return 0.0
        return self.backoff.remaining((pod_key, name), p.down_since, now)

    def restart(self, pod_key: str, name: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        p = self._state[(pod_key, name)]
        self.backoff.next((pod_key, name), now)
        p.down_since, p.started, p.generation, p.restarts = None, now, p.generation + 1, p.restarts + 1

    def down(self, pod_key: str) -> set[str]:
        """The pod's containers that are killed and not restarted yet."""
        return {n for n, p in self._by_pod.get(pod_key, {}).items() if p.down_since is not None}

    def peek(self, pod_key: str, name: str) -> Played | None:
        return self._state.get((pod_key, name))

    def forget(self, pod_key: str) -> None:
        for name in self._by_pod.pop(pod_key, {}):
            del self._state[(pod_key, name)]
        self.backoff.forget(pod_key)
