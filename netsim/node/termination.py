"""Stopping a deleted pod's containers as the kubelet does, without holding up the daemon's pass.

Upstream (pkg/kubelet/kuberuntime/kuberuntime_container.go killContainersWithSyncResult / killContainer;
pkg/kubelet/lifecycle/handlers.go): every container of the pod is stopped in parallel, each with the pod's
grace period (`metadata.deletionGracePeriodSeconds`, which the API server set from
`terminationGracePeriodSeconds`, 30 s by default, or from `delete --grace-period`):

1. its `lifecycle.preStop` hook runs (exec, httpGet or sleep) for at most the grace period; a failing hook is
   reported (event FailedPreStopHook) and does not stop the termination; the time it took comes off the
   grace period, leaving at least 2 s (minimumGracePeriodInSeconds);
2. the runtime's StopContainer: SIGTERM (event Killing "Stopping container NAME"), then SIGKILL when the
   rest of the grace period has run out.

A container with a `command` is a real process: it gets the signals and the kubelet waits for it to exit. A
container the workload server plays has no process: at SIGTERM it stops accepting connections, as most
servers do on SIGTERM, unless the pod asks it to keep serving a while, the annotation
`netsim.io/drain-seconds: "N"` (an application that drains for N seconds), bounded by the grace period.

`step(pod, now)` is called once per pass for a terminating pod and returns True once every container has
stopped, when the sandbox may go. Pure bookkeeping: the side effects (running a hook, signalling a process,
closing a played container's ports) are injected.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

DRAIN_ANNOTATION = "netsim.io/drain-seconds"
DEFAULT_GRACE = 30.0
MINIMUM_GRACE = 2.0  # kuberuntime minimumGracePeriodInSeconds


@dataclass
class _Container:
    name: str
    played: bool
    hook: Future | None = None
    hook_started: float = 0.0
    term_at: float | None = None  # when SIGTERM went (or the played container stopped accepting)
    kill_at: float = 0.0  # SIGKILL after this
    stopped: bool = False


@dataclass
class _Pod:
    started: float
    grace: float
    containers: dict[str, _Container] = field(default_factory=dict)


def grace_of(pod: dict[str, Any]) -> float:
    md = pod.get("metadata") or {}
    g = md.get("deletionGracePeriodSeconds")
    if g is None:
        g = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE)
    return max(0.0, float(g))


def drain_seconds(pod: dict[str, Any]) -> float:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(DRAIN_ANNOTATION)
    try:
        return max(0.0, float(raw)) if raw is not None else 0.0
    except ValueError:
        return 0.0


class Terminator:
    def __init__(self, *, run_hook: Callable[[dict[str, Any], dict[str, Any], dict[str, Any], float], tuple[bool, str]],
                 signal_term: Callable[[dict[str, Any], str], None], signal_kill: Callable[[dict[str, Any], str], None],
                 running: Callable[[dict[str, Any], str], bool], stop_played: Callable[[dict[str, Any]], None],
                 is_played: Callable[[dict[str, Any], dict[str, Any]], bool],
                 event: Callable[[dict[str, Any], str, str, str], None], workers: int = 8):
        self.run_hook, self.signal_term, self.signal_kill = run_hook, signal_term, signal_kill
        self.running, self.stop_played, self.is_played, self.event = running, stop_played, is_played, event
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="netsim-prestop")
        self._pods: dict[str, _Pod] = {}

    def forget(self, key: str) -> None:
        self._pods.pop(key, None)

    def stopping(self) -> list[str]:
        return sorted(self._pods)

    def step(self, key: str, pod: dict[str, Any], now: float) -> bool:
        st = self._pods.get(key)
        specs = {c.get("name", ""): c for c in (pod.get("spec") or {}).get("containers") or []}
        if st is None:
            st = self._pods[key] = _Pod(now, grace_of(pod))
            for name, c in specs.items():
                ct = _Container(name, self.is_played(pod, c))
                hook = ((c.get("lifecycle") or {}).get("preStop"))
                if hook and st.grace > 0:
                    ct.hook_started = now
                    ct.hook = self._pool.submit(self._hook, pod, c, hook, st.grace)
                st.containers[name] = ct
        played_stop = False
        for name, ct in st.containers.items():
            if ct.stopped:
                continue
            if ct.term_at is None:
                if ct.hook is not None and not ct.hook.done() and now - st.started < st.grace:
                    continue  # the preStop hook still runs, within the grace period
                left = st.grace - (now - st.started)
                if ct.hook is not None:
                    left = max(left, MINIMUM_GRACE) if st.grace > 0 else 0.0
                ct.term_at, ct.kill_at = now, now + max(0.0, left)
                self.event(pod, name, "Killing", f"Stopping container {name}")
                if not ct.played:
                    self.signal_term(pod, name)
            if ct.played:
                drain = min(drain_seconds(pod), max(0.0, ct.kill_at - ct.term_at))
                if now >= ct.term_at + drain:
                    played_stop = True
                    ct.stopped = True
                continue
            if not self.running(pod, name):
                ct.stopped = True
            elif now >= ct.kill_at:
                self.signal_kill(pod, name)
                ct.stopped = not self.running(pod, name)
        if played_stop:
            self.stop_played(pod)
        done = all(ct.stopped for ct in st.containers.values())
        if done:
            self._pods.pop(key, None)
        return done

    def _hook(self, pod: dict[str, Any], container: dict[str, Any], hook: dict[str, Any], grace: float) -> None:
        try:
            ok, message = self.run_hook(pod, container, hook, grace)
        except Exception as exc:  # noqa: BLE001 - a hook that cannot run is a failed hook
            ok, message = False, str(exc)
        if not ok:
            self.event(pod, container.get("name", ""), "FailedPreStopHook",
                       f"PreStopHook failed: {message}" if message else "PreStopHook failed")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
