"""The kubelet's probe workers: readiness, liveness and startup probes as pkg/kubelet/prober runs them.

One worker per (pod, container, probe type) (prober/worker.go, our own code):
- initial results: readiness Failure (not Ready until a probe passes), liveness Success, startup Unknown;
- a new container instance (a restart) resets the worker to its initial result and takes it off hold;
- nothing runs before `initialDelaySeconds` after the container started, then every `periodSeconds`;
- until the startup probe has succeeded the container is not "started" and only the startup probe runs;
  once started, only readiness and liveness run;
- a result is committed only after `successThreshold` (`failureThreshold`) equal results in a row;
- a committed liveness or startup Failure puts the worker on hold until the container is replaced (the
  kubelet kills it: kuberuntime_manager.go computePodActions, "Container X failed liveness probe, will be
  restarted").
Each failed probe is reported as the kubelet's prober.go does: a Warning event `Unhealthy` with
"<Type> probe failed: <output>".

Probes run off the daemon's pass, on a small thread pool (the kubelet's workers are goroutines): a probe
that waits for its timeout never holds up other pods. `ProbeWorker` is pure; `ProbeManager` owns the
workers and the pool; the probe actions themselves are in netsim.node.probe_actions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from netsim.node.podkeyed import PodKeyed

READINESS, LIVENESS, STARTUP = "Readiness", "Liveness", "Startup"
FIELDS = {READINESS: "readinessProbe", LIVENESS: "livenessProbe", STARTUP: "startupProbe"}
PROBE_WORKERS = 8


@dataclass(frozen=True)
class ProbeSpec:
    """A probe's timing, with the API server's defaults (pkg/apis/core/v1/defaults.go SetDefaults_Probe)."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: dict[str, Any]) -> ProbeSpec:
        def num(key: str, default: float) -> float:
            try:
                value = float(probe.get(key, default))
            except (TypeError, ValueError):
                return default
            return value if value > 0 or key == "initialDelaySeconds" else default
        return cls(num("initialDelaySeconds", 0), num("periodSeconds", 10), num("timeoutSeconds", 1),
                   int(num("successThreshold", 1)), int(num("failureThreshold", 3)))


@dataclass
class ProbeWorker:
    kind: str
    spec: ProbeSpec
    instance: Any = None  # the container instance probed (a new one resets the worker)
    result: bool | None = None  # the committed result
    last: bool | None = None
    run: int = 0
    next_at: float = 0.0
    on_hold: bool = False

    def initial(self) -> bool | None:
        return {READINESS: False, LIVENESS: True, STARTUP: None}[self.kind]

    def reset(self, instance: Any) -> None:
        """A new container: its initial result, off hold (worker.go: a new container ID)."""
        self.instance, self.result, self.last, self.run, self.next_at, self.on_hold = \
            instance, self.initial(), None, 0, 0.0, False

    def due(self, now: float, running_since: float, started: bool) -> bool:
        """Whether a probe runs now (worker.go doProbe's gates)."""
        if self.on_hold or now < self.next_at:
            return False
        if now - running_since < self.spec.initial_delay:
            return False
        return (self.kind == STARTUP) != started  # startup probes before, the others after the start

    def record(self, ok: bool, now: float) -> bool:
        """One probe's result; True when it committed a new result. The next probe is a period later."""
        self.next_at = now + self.spec.period
        if self.last == ok:
            self.run += 1
        else:
            self.last, self.run = ok, 1
        threshold = self.spec.success_threshold if ok else self.spec.failure_threshold
        if self.run < threshold:
            return False
        changed = self.result != ok
        self.result = ok
        if not ok and self.kind in (LIVENESS, STARTUP):
            self.on_hold, self.run = True, 0
        return changed


@dataclass
class ContainerProbes:
    """What the probes say about one container now."""

    ready: bool = True
    started: bool = True
    kill: str | None = None  # LIVENESS or STARTUP: a committed failure, the container must be restarted
    failures: list[tuple[str, str]] = field(default_factory=list)  # (type, output) of probes failed since last time


ProbeCall = Callable[[str, dict[str, Any], float], tuple[bool, str]]  # (type, probe, timeout) -> (ok, output)


class ProbeManager:
    """Every container's probe workers; probes run on a thread pool and their results are read at the next
    `evaluate` of that container."""

    def __init__(self, workers: int = PROBE_WORKERS):
        self._workers: PodKeyed[tuple[str, str, str], ProbeWorker] = PodKeyed()
        self._flight: dict[tuple[str, str, str], tuple[Future, Any]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._size = workers
        self._lock = threading.Lock()

    def _submit(self, fn: Callable[[], tuple[bool, str]]) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="netsim-prober")
        return self._pool.submit(fn)

    def in_flight(self) -> bool:
        return bool(self._flight)

    def pod_in_flight(self, pod_key: str) -> bool:
        """A probe of this pod is running (its result is collected by the next evaluate)."""
        return any(k[0] == pod_key for k in self._flight)

    def next_due(self, now: float) -> float:
        """Seconds until a worker's next probe is due (0 while probes are in flight: results to collect)."""
        if self._flight:
            return 0.02
        times = [w.next_at - now for w in self._workers.values() if not w.on_hold]
        return max(0.0, min(times, default=10.0))

    def evaluate(self, pod_key: str, container: dict[str, Any], instance: Any, running_since: float, now: float,
                 call: Callable[[str, dict[str, Any], float], tuple[bool, str]]) -> ContainerProbes:
        """Collect finished probes, start due ones, and say whether the container is started, ready, or must
        be killed. `instance` identifies the running container (None: not running); `call(type, probe,
        timeout)` runs one probe (on the pool) and returns (success, output)."""
        out = ContainerProbes()
        name = container["name"]
        kinds = [k for k in (STARTUP, LIVENESS, READINESS) if container.get(FIELDS[k])]
        for kind in list(FIELDS):
            if kind not in kinds:
                self._workers.pop((pod_key, name, kind), None)
        workers = {}
        for kind in kinds:
            key = (pod_key, name, kind)
            w = self._workers.get(key)
            spec = ProbeSpec.of(container[FIELDS[kind]])
            if w is None or w.spec != spec:
                w = self._workers[key] = ProbeWorker(kind, spec)
                w.reset(instance)
            elif w.instance != instance:
                w.reset(instance)
                self._flight.pop(key, None)  # a result about the old instance is of no use
            workers[kind] = w
        for kind, w in workers.items():
            key = (pod_key, name, kind)
            flight = self._flight.get(key)
            if flight is not None and flight[0].done():
                del self._flight[key]
                try:
                    ok, output = flight[0].result()
                except Exception as exc:  # noqa: BLE001 - a probe that cannot run is a failed probe
                    ok, output = False, str(exc)
                if flight[1] == instance and not w.on_hold:
                    w.record(ok, now)
                    if not ok:
                        out.failures.append((kind, output))
        startup = workers.get(STARTUP)
        out.started = instance is not None and (startup is None or startup.result is True)
        if instance is None:
            out.ready = False
            return out
        for kind, w in workers.items():
            key = (pod_key, name, kind)
            if key not in self._flight and w.due(now, running_since, out.started):
                probe, timeout = container[FIELDS[kind]], w.spec.timeout
                w.next_at = now + w.spec.period  # not again before the period, whatever the result's delay
                self._flight[key] = (self._submit(lambda k=kind, p=probe, t=timeout: call(k, p, t)), instance)
        readiness = workers.get(READINESS)
        out.ready = out.started and (readiness is None or readiness.result is True)
        for kind in (STARTUP, LIVENESS):
            w = workers.get(kind)
            if w is not None and w.on_hold and w.result is False:
                out.kill = kind
        return out

    def forget(self, pod_key: str, container: str | None = None) -> None:
        for key in self._workers.keys_of(pod_key):
            if container in (None, key[1]):
                del self._workers[key]
            self._flight.pop(key, None)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class SpamFilter:
    """client-go's EventSourceObjectSpamFilter (tools/record/events_cache.go): per source and object a token
    bucket of `burst` events refilled at `qps` (defaults 25 and one per 5 minutes), so a probe that fails
    every second for a day reports its first 25 failures and then one every 5 minutes, not 86400."""

    burst: float = 25.0
    qps: float = 1.0 / 300.0
    _buckets: PodKeyed[tuple[str, str], tuple[float, float]] = field(default_factory=PodKeyed)
    # (pod key, source) -> (tokens, last refill)

    def allow(self, key: tuple[str, str], now: float) -> bool:
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.qps)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def forget(self, pod_key: str) -> None:
        self._buckets.forget(pod_key)
