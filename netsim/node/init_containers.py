"""Init containers and sidecars, as the kubelet runs them before a pod's app containers.

kuberuntime_manager.go computePodActions / computeInitContainerActions (with SidecarContainers, GA in 1.33):
init containers are handled one at a time, in order. A regular one must exit 0 before the next starts; one
that exits non-zero is restarted (with the container back-off, so the pod shows Init:CrashLoopBackOff)
unless the pod's restartPolicy is Never, which fails the pod. A sidecar (an init container with
`restartPolicy: Always`) is started and the next one follows as soon as it runs (with a startupProbe: once
that probe succeeded); it stays up while the app containers run and
is restarted, with back-off, whenever it exits. The app containers start once every regular init
container completed and every sidecar started. Meanwhile the pod is Pending with condition Initialized
False, and its `initContainerStatuses` say where it is (kubectl shows Init:N/M).

Images are not run: an init container without `command` is played as completing at once (exit 0), a
sidecar without `command` as started (the workload server plays its ports).

`plan` is the pure decision; `InitRunner` applies it to a pod's container processes each pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.node.backoff import RestartBackoff
from netsim.node.pod_env import runs_command


def rfc3339(t: float) -> str:
    """As the API writes times (netsim.store.rfc3339, which this layer does not import)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


@dataclass(frozen=True)
class Step:
    kind: str  # start | restart | retry | wait | done | failed
    name: str = ""


def is_sidecar(container: Mapping[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def plan(inits: list[Mapping[str, Any]], procs: Mapping[str, Any], policy: str, *, done: bool = False,
         unstarted: frozenset[str] = frozenset()) -> Step:
    """What to do next for a pod's init containers. `procs` maps a container name to its process record
    (`exit_code`, `waiting`; absent: never started). With `done` (initialization finished earlier) only
    sidecars are looked after. `unstarted`: running sidecars whose startupProbe has not succeeded yet."""
    for c in inits:
        name = str(c["name"])
        p = procs.get(name)
        sidecar = is_sidecar(c)
        if done and not sidecar:
            continue
        if p is None:
            return Step("start", name)
        if p.waiting is not None:
            return Step("retry", name)
        if p.exit_code is None:
            if sidecar and name not in unstarted:
                continue  # started: the next one may start
            return Step("wait", name)
        if sidecar:
            return Step("restart", name)
        if p.exit_code == 0:
            continue
        return Step("failed", name) if policy == "Never" else Step("restart", name)
    return Step("done")


@dataclass
class _PodInit:
    done: bool = False
    failed: bool = False
    backing_off: dict[str, str] = field(default_factory=dict)  # container -> CrashLoopBackOff message
    started: set[str] = field(default_factory=set)  # sidecars whose startupProbe succeeded


class InitRunner:
    """Runs the init containers of the pods of one cluster. The callables are the ClusterKubelet's:
    `start(pod, container) -> bool` (False: refused, Waiting), `procs(pod) -> {name: record}`,
    `played(pod, name, exit_code)` records a container without a process, `start_apps(pod)`."""

    def __init__(self, start: Callable[..., bool], procs: Callable[[Mapping[str, Any]], Mapping[str, Any]],
                 played: Callable[[Mapping[str, Any], str, int | None], None],
                 start_apps: Callable[[Mapping[str, Any]], None],
                 sidecar_started: Callable[[Mapping[str, Any], Mapping[str, Any], Any], bool] | None = None):
        self.start = start
        self.sidecar_started = sidecar_started
        self.procs = procs
        self.played = played
        self.start_apps = start_apps
        self.backoff = RestartBackoff()
        self.pods: dict[str, _PodInit] = {}

    @staticmethod
    def _key(pod: Mapping[str, Any]) -> str:
        md = pod.get("metadata") or {}
        return f"{md.get('namespace') or 'default'}/{md.get('name')}"

    def begin(self, pod: Mapping[str, Any], *, initialized: bool = False) -> None:
        """A new sandbox (or an adopted one: `initialized` when the pod had finished initializing)."""
        self.pods[self._key(pod)] = _PodInit(done=initialized)
        self.backoff.forget(self._key(pod))
        self.advance(pod)

    def forget(self, key: str) -> None:
        self.pods.pop(key, None)
        self.backoff.forget(key)

    def state(self, pod: Mapping[str, Any]) -> _PodInit | None:
        return self.pods.get(self._key(pod))

    def _start(self, pod: Mapping[str, Any], c: Mapping[str, Any]) -> None:
        if self.start(pod, c) and not runs_command(c):
            self.played(pod, str(c["name"]), None if is_sidecar(c) else 0)

    def advance(self, pod: Mapping[str, Any]) -> None:
        """Take every step that can be taken now (several played containers complete in one pass)."""
        key = self._key(pod)
        st = self.pods.get(key)
        spec = pod.get("spec") or {}
        inits = list(spec.get("initContainers") or [])
        if st is None or st.failed:
            return
        policy = spec.get("restartPolicy", "Always")
        by_name = {str(c["name"]): c for c in inits}
        for _ in range(2 * len(inits) + 2):
            procs = self.procs(pod)
            step = plan(inits, procs, policy, done=st.done, unstarted=self._unstarted(pod, inits, procs, st))
            if step.kind == "done":
                if not st.done:
                    st.done = True
                    self.start_apps(pod)
                return
            if step.kind == "failed":
                st.failed = True
                return
            if step.kind == "wait":
                return
            c = by_name[step.name]
            if step.kind in ("start", "retry"):
                self._start(pod, c)
                p = self.procs(pod).get(step.name)
                if p is None or p.waiting is not None or (p.exit_code is None and not is_sidecar(c)):
                    return
                continue
            # restart: an exited sidecar, or a failed init container, after the back-off
            p = self.procs(pod)[step.name]
            now = time.time()
            bkey = (key, step.name)
            wait = self.backoff.remaining(bkey, p.finished or now, now)
            if wait > 0:
                md = pod.get("metadata") or {}
                st.backing_off[step.name] = (
                    f"back-off {int(self.backoff.current(bkey))}s restarting failed container={step.name} "
                    f"pod={md.get('name')}_{md.get('namespace') or 'default'}({md.get('uid')})")
                return
            st.backing_off.pop(step.name, None)
            st.started.discard(step.name)  # a new instance: its startupProbe runs again
            self.backoff.next(bkey, now)
            self._start(pod, c)
            return

    def _unstarted(self, pod: Mapping[str, Any], inits: list[Mapping[str, Any]], procs: Mapping[str, Any],
                   st: _PodInit) -> frozenset[str]:
        """Running sidecars with a command and a startupProbe that has not succeeded yet (a played sidecar
        has no process to probe: started at once)."""
        out = set()
        for c in inits:
            name = str(c["name"])
            p = procs.get(name)
            if (not is_sidecar(c) or not c.get("startupProbe") or not runs_command(c) or p is None
                    or p.exit_code is not None or p.waiting is not None or name in st.started):
                continue
            if self.sidecar_started is not None and self.sidecar_started(pod, c, p):
                st.started.add(name)
            else:
                out.add(name)
        return frozenset(out)

    def statuses(self, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        """initContainerStatuses as the kubelet reports them."""
        st = self.pods.get(self._key(pod)) or _PodInit()
        procs = self.procs(pod)
        before = {x.get("name"): x for x in (pod.get("status") or {}).get("initContainerStatuses") or []}
        out = []
        for c in (pod.get("spec") or {}).get("initContainers") or []:
            name = str(c["name"])
            p = procs.get(name)
            entry: dict[str, Any] = {"name": name, "image": c.get("image", ""), "ready": False,
                                     "restartCount": p.restarts if p is not None else 0}
            if p is None and st.done and not is_sidecar(c):
                # completed before this daemon started (adopted pod): what was reported then stands
                out.append(before.get(name) or {**entry, "state": {"terminated": {"exitCode": 0,
                                                                                  "reason": "Completed"}}})
                continue
            if p is None:
                entry["state"] = {"waiting": {"reason": "PodInitializing"}}
            elif p.waiting is not None:
                entry["state"] = {"waiting": {"reason": p.waiting[0], **({"message": p.waiting[1]}
                                                                       if p.waiting[1] else {})}}
            elif p.exit_code is None:
                entry["state"] = {"running": {"startedAt": rfc3339(p.started)}}
                entry["ready"] = is_sidecar(c)
            else:
                term = {"exitCode": p.exit_code, "reason": "Completed" if p.exit_code == 0 else "Error",
                        "startedAt": rfc3339(p.started), "finishedAt": rfc3339(p.finished or p.started)}
                if name in st.backing_off:
                    entry["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": st.backing_off[name]}}
                    entry["lastState"] = {"terminated": term}
                else:
                    entry["state"] = {"terminated": term}
            if is_sidecar(c):
                entry["started"] = (p is not None and p.waiting is None and p.exit_code is None
                                    and (not c.get("startupProbe") or not runs_command(c) or name in st.started))
            out.append(entry)
        return out
