"""The driver: runs the controllers and the scheduler against the store until nothing is left to do.

`reconcile_once(store, clock)` runs every controller in turn, each on a fresh snapshot, applying its
actions in the same store transaction as the snapshot it read (so a pass never interleaves with another
writer). `run_until_converged(store, kubelet, clock, timeout)` alternates passes with kubelet work: sandbox
creation for bound pods, readiness and phase updates, completion of graceful deletions, node heartbeats.

The kubelet is an interface (`Kubelet` below): the real one (netsim.node) makes netns + CNI; tests use a
fake. Converged = one pass wanted no action, the kubelet step changed nothing, and every pod on a ready node
is Running and Ready or has finished.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from netsim.controlplane import objects as o
from netsim.controlplane.deployment import reconcile_deployments
from netsim.controlplane.endpointslice import reconcile_endpointslices
from netsim.controlplane.events import Event
from netsim.controlplane.nodes import (
    heartbeat_status,
    node_ip,
    node_ready,
    reconcile_garbage,
    reconcile_nodes,
)
from netsim.controlplane.replicaset import reconcile_replicasets
from netsim.controlplane.scheduler import reconcile_scheduler
from netsim.controlplane.state import Action, Config, Context, Snapshot, SnapshotCache, apply_actions
from netsim.controlplane.workqueue import reset_queues
from netsim.fanout import fan_out
from netsim.store import Store, parse_time, rfc3339

log = logging.getLogger("netsim.controlplane")
Controller = Callable[[Snapshot, Context], list[Action]]
HEARTBEAT_SECONDS = 1.0  # the kubelets' heartbeat period while a kubelet step runs long
DRAINING = "netsimDraining"  # pod status: the kubelet saw the deletion and stops the sandbox next pass
TEARDOWN_WORKERS = 16  # sandboxes a kubelet step tears down at once


def _controllers() -> list[tuple[str, Controller]]:
    # Imported here so a controller module may be absent while it is being written.
    from netsim.controlplane.hpa import reconcile_hpas
    from netsim.controlplane.knative import reconcile_knative
    out: list[tuple[str, Controller]] = [("node-lifecycle", reconcile_nodes), ("garbage-collector", reconcile_garbage),
                                         ("horizontal-pod-autoscaler", reconcile_hpas),
                                         ("knative-serving", reconcile_knative),
                                         ("deployment", reconcile_deployments)]
    from netsim.controlplane import workloads
    out += [("daemonset", workloads.reconcile_daemonsets), ("statefulset", workloads.reconcile_statefulsets),
            ("cronjob", workloads.reconcile_cronjobs), ("job", workloads.reconcile_jobs)]
    out += [("replicaset", reconcile_replicasets), ("scheduler", reconcile_scheduler),
            ("endpointslice", reconcile_endpointslices)]
    from netsim.controlplane.disruption import reconcile_disruption
    out.append(("disruption", reconcile_disruption))
    # last: what the controllers above (and the process's other readers) could not parse, on the objects
    from netsim.controlplane.parsefailures import reconcile_parse_failures
    out.append(("parse-failures", reconcile_parse_failures))
    return out


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class FakeClock:
    """A clock tests drive: sleep() advances it instantly."""

    t: float = 1_700_000_000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass(frozen=True)
class PodState:
    """What a kubelet reports about a running pod."""

    ready: bool = True
    phase: str = "Running"  # Running | Succeeded | Failed | Pending
    initialized: bool = True  # False while init containers run (condition Initialized)


class Kubelet(Protocol):
    """What the loop needs from the node agents (one object for all nodes, dispatching on spec.nodeName)."""

    def node_alive(self, node: str) -> bool:
        """False when the node is failed (its kubelet does not heartbeat nor act)."""

    def create_sandbox(self, pod: dict[str, Any]) -> str:
        """Make the pod's netns and network (CNI ADD); return its IP."""

    def delete_sandbox(self, pod: dict[str, Any]) -> None:
        """Tear the pod's network down (CNI DEL) and remove its netns."""

    def pod_state(self, pod: dict[str, Any]) -> PodState:
        """Readiness and phase of a pod whose sandbox exists."""

    def terminate(self, pod: dict[str, Any]) -> bool:
        """One step of stopping a deleted pod's containers (preStop, SIGTERM, grace, SIGKILL); True once
        they have stopped and the sandbox may go. Never blocks."""


@dataclass
class PassResult:
    applied: int = 0
    by_controller: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # controller -> the error it raised (others went on)


def reconcile_once(store: Store, clock: Clock, *, rng: random.Random | None = None,
                   config: Config | None = None, metrics: Any = None,
                   memory: dict[str, Any] | None = None) -> PassResult:
    """One pass of every controller (in a single transaction); returns how many writes each made.
    `metrics` (a MetricsView) and `memory` (controllers' state between passes) come from the caller."""
    ctx = Context(now=clock.now(), rng=rng or random.Random(), config=config or Config(), metrics=metrics,
                  memory=memory if memory is not None else {})
    result = PassResult()
    # The controllers' informer cache lives with their memory (the daemon keeps it between passes).
    cache = ctx.memory.get(SNAPSHOT_CACHE)
    if not isinstance(cache, SnapshotCache):
        cache = ctx.memory[SNAPSHOT_CACHE] = SnapshotCache()
    try:
        with store.transaction() as tx:
            _run_controllers(tx, ctx, cache, result)
    except BaseException:
        cache.invalidate()  # it may hold writes that were rolled back
        reset_queues(ctx.memory)  # and the controllers' queues keys whose syncs were rolled back
        raise
    return result


SNAPSHOT_CACHE = "snapshot-cache"


def _run_controllers(tx: Store, ctx: Context, cache: SnapshotCache, result: PassResult) -> None:
    """Every controller in turn inside the pass's transaction, each seeing the writes of those before it."""
    snap = None
    ctx.feed = tx
    for name, controller in _controllers():
        # Each controller sees the writes of those before it; a snapshot nobody wrote after is still
        # current (the cache makes loading one cost the objects written since, not every object).
        if snap is None:
            snap = cache.load(tx)
        try:
            actions = controller(snap, ctx)
        except Exception as e:  # noqa: BLE001 - one controller choking must not stop the others
            log.exception("controller %s failed", name)
            failure = Event(ctx.now, f"{name}-controller", f"controller/{name}", "ReconcileFailed",
                            f"{type(e).__name__}: {e}"[:1000])
            tx.append_events([failure.to_record()])
            result.events.append(failure)
            result.failed[name] = failure.message
            reset_queues(ctx.memory)  # what it took off its queue was not synced: everything again next pass
            continue
        n, events = apply_actions(tx, actions, ctx.now)
        if n:
            snap = None
            result.by_controller[name] = n
        result.applied += n
        result.events += events


def kubelet_step(store: Store, kubelet: Kubelet, clock: Clock, *, drain_pass: bool = True,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, pods: Iterable[dict[str, Any]] | None = None) -> int:
    """Do what the kubelets of live nodes would: heartbeat, start sandboxes, report status, finish
    deletions. Returns the number of writes. `drain_pass` (spec.timing, instant): a deleted pod keeps
    serving for one more pass before its containers are stopped; without it (realistic) the kubelet
    reacts to the deletion at once, as real kubelets do, concurrently with kube-proxy. `heartbeat_seconds`:
    the status heartbeat's period during a long step (the daemon, whose node leases are renewed on their
    own thread, posts status less often, as kubelets with leases do: every node's status written each
    second was a hundred writes a second through a step of ten thousand sandboxes). `pods`: the pods to
    sync this step, as a kubelet's pod workers sync the pods its config source changed or its work queue
    hands out (netsim.agents.pod_source); None: every pod in the store."""
    writes = 0
    now = clock.now()
    nodes = {o.name(n): n for n in store.list("Node")}
    alive = {name for name in nodes if kubelet.node_alive(name)}

    def heartbeat(at: float, period: float = 0.0) -> None:
        for name in sorted(alive):
            node = nodes[name]
            c = o.condition(node, "Ready")
            last = parse_time(c.get("lastHeartbeatTime")) if c is not None else None
            if (c is None or c.get("status") != "True" or last is None
                    or (c.get("lastHeartbeatTime") != rfc3339(at) and at - last >= period)):
                # not counted as a write: heartbeats alone do not mean the cluster is still changing
                nodes[name] = store.update_status("Node", None, name, heartbeat_status(node, at))

    # A Ready node's unchanged status is posted every `heartbeat_seconds`, not on every step: the kubelet
    # posts it every nodeStatusUpdateFrequency (pkg/kubelet/kubelet_node_status.go syncNodeStatus; with
    # leases, an unchanged status only every nodeStatusReportFrequency, tryUpdateNodeStatus), and its Lease
    # says it is alive meanwhile. A write each second per node woke every agent of the daemon each second.
    heartbeat(now, heartbeat_seconds)
    last_beat = now
    events: list[Event] = []
    teardown: list[dict[str, Any]] = []
    for pod in store.list("Pod") if pods is None else pods:
        nn = o.node_name(pod)
        if nn not in alive:
            continue
        if clock.now() - last_beat >= heartbeat_seconds:
            # Real kubelets heartbeat on their own timers; a long step (a thousand sandboxes) must not
            # starve them, or the node-lifecycle controller marks every node NotReady and evicts pods.
            last_beat = clock.now()
            heartbeat(last_beat)
        actor = f"kubelet/{nn}"
        status = copy.deepcopy(pod.get("status") or {})
        has_sandbox = bool(status.get("podIP"))
        if o.is_terminating(pod):
            if has_sandbox and drain_pass and not status.get(DRAINING):
                # Graceful termination: the pod keeps serving for one more pass. The EndpointSlice controller
                # has already marked it not ready in this pass, and the data plane (kube-proxy) syncs after
                # this step, so by the time the sandbox goes no Service rule sends new connections to it.
                # Upstream the kubelet and the endpoints controller react to deletionTimestamp concurrently
                # and the containers' SIGTERM handling / preStop hooks within terminationGracePeriodSeconds
                # cover the gap; without that, connections in a rolling update hit a vanished pod.
                status[DRAINING] = True
                store.update_status("Pod", o.namespace(pod), o.name(pod), status)
                writes += 1
                continue
            if has_sandbox:
                if not kubelet.terminate(pod):
                    continue  # its containers are still stopping (a preStop hook, the grace period)
                teardown.append(pod)  # below, together with the step's other terminated pods
            else:
                store.delete("Pod", o.namespace(pod), o.name(pod))
            writes += 1
            continue
        if o.is_terminal(pod):
            continue
        try:
            if not has_sandbox:
                if clock.now() < float(status.get(RETRY_AT, 0)):
                    continue  # backing off after a failed attempt
                # Stamped when this sandbox started, not when the step did: a step may make a thousand.
                t0, started = time.monotonic(), clock.now()
                try:
                    ip = kubelet.create_sandbox(pod)
                except Exception as e:  # noqa: BLE001 - one pod's failure must not stop the others
                    writes += _sandbox_failed(store, kubelet, pod, status, e, clock, events)
                    continue
                events.append(Event(started, actor, o.ref(pod), "SandboxCreated", f"pod IP {ip}",
                                    (time.monotonic() - t0) * 1000))
                status.update({"podIP": ip, "podIPs": [{"ip": ip}], "hostIP": node_ip(nodes[nn]),
                               "startTime": rfc3339(now)})
                for k in (FAILURES, RETRY_AT):
                    status.pop(k, None)
                if o.condition({"status": status}, READY_TO_START) is not None:
                    o.set_condition(status, READY_TO_START, "True", now)
            state = kubelet.pod_state(pod)
        except Exception as e:  # noqa: BLE001 - e.g. a probe that cannot run: this pod only
            events.append(Event(clock.now(), actor, o.ref(pod), "FailedSync", f"error syncing pod: {e}"))
            continue
        status["phase"] = state.phase
        o.set_condition(status, "Initialized", "True" if state.initialized else "False", now)
        o.set_condition(status, "PodScheduled", "True", now)
        running = state.phase == "Running"
        ready = "True" if running and state.ready else "False"
        o.set_condition(status, "ContainersReady", ready, now)
        o.set_condition(status, "Ready", ready, now)
        if status != (pod.get("status") or {}):
            store.update_status("Pod", o.namespace(pod), o.name(pod), status)
            writes += 1
    if teardown:
        events.extend(_delete_sandboxes(kubelet, teardown, clock))
        for pod in teardown:
            store.delete("Pod", o.namespace(pod), o.name(pod))
    if events:
        store.append_events(e.to_record() for e in events)
    return writes


# A pod whose sandbox cannot be made is retried with the kubelet's backoff (pkg/kubelet: backOffPeriod 10 s,
# doubling to MaxContainerBackOff 300 s), and meanwhile reported, as the kubelet does, by an event
# FailedCreatePodSandBox and the condition PodReadyToStartContainers False with the error. It is settled,
# not pending: convergence does not wait for it (see pending_pods / failed_pods), so one bad pod never
# holds up the rest of the cluster.
SANDBOX_FAILED = "FailedCreatePodSandBox"
READY_TO_START = "PodReadyToStartContainers"
FAILURES = "netsimSandboxFailures"  # status: consecutive failed attempts
RETRY_AT = "netsimSandboxRetryAt"  # status: no new attempt before this time (epoch seconds)
BACKOFF_SECONDS = (10.0, 300.0)


def _sandbox_failed(store: Store, kubelet: Kubelet, pod: dict[str, Any], status: dict[str, Any], error: Exception,
                    clock: Clock, events: list[Event]) -> int:
    """Record a failed sandbox creation on the pod (status and event), undo what was half made; 1 write."""
    try:
        kubelet.delete_sandbox(pod)  # whatever the attempt made (a netns, an address) must not leak
    except Exception:  # noqa: BLE001, S110 - best effort: the attempt may have made nothing
        pass
    now = clock.now()
    failures = int(status.get(FAILURES, 0)) + 1
    delay = min(BACKOFF_SECONDS[0] * 2 ** (failures - 1), BACKOFF_SECONDS[1])
    message = f"Failed to create pod sandbox: {type(error).__name__}: {error}"[:1000]
    status.update({"phase": "Pending", FAILURES: failures, RETRY_AT: now + delay})
    o.set_condition(status, "PodScheduled", "True", now)
    o.set_condition(status, READY_TO_START, "False", now, reason=SANDBOX_FAILED, message=message)
    for typ in ("ContainersReady", "Ready"):
        o.set_condition(status, typ, "False", now, reason=SANDBOX_FAILED)
    store.update_status("Pod", o.namespace(pod), o.name(pod), status)
    events.append(Event(now, f"kubelet/{o.node_name(pod)}", o.ref(pod), SANDBOX_FAILED,
                        f"{message} (attempt {failures}, next in {delay:.0f}s)"))
    return 1


def failed_pods(store: Store, pods: Iterable[dict[str, Any]] | None = None) -> dict[str, str]:
    """Pods whose sandbox could not be made (ns/name -> why): settled, reported, retried with backoff.
    `pods`: as for pending_pods."""
    out = {}
    for pod in store.list("Pod") if pods is None else pods:
        status = pod.get("status") or {}
        if status.get(FAILURES) and not status.get("podIP"):
            c = o.condition(pod, READY_TO_START) or {}
            out[o.key(pod)] = c.get("message") or SANDBOX_FAILED
    return out


def _delete_sandboxes(kubelet: Kubelet, pods: list[dict[str, Any]], clock: Clock) -> list[Event]:
    """Tear down the sandboxes of terminated pods, several at a time, as real kubelets do (a pod worker per
    pod): most of a teardown is the kernel waiting out an RCU barrier per deleted veth (~30 ms), and
    concurrent deletions share those waits. Scaling 300 pods to zero took ~10 s one after another."""
    def one(pod: dict[str, Any]) -> Event:
        t0, started = time.monotonic(), clock.now()
        kubelet.delete_sandbox(pod)
        return Event(started, f"kubelet/{o.node_name(pod)}", o.ref(pod), "Killing", "Stopping pod sandbox",
                     (time.monotonic() - t0) * 1000)
    return fan_out(_teardown_pool(), one, pods)


_TEARDOWN_POOL: ThreadPoolExecutor | None = None


def _teardown_pool() -> ThreadPoolExecutor:
    """One pool per process; its threads start on first use."""
    global _TEARDOWN_POOL
    if _TEARDOWN_POOL is None:
        _TEARDOWN_POOL = ThreadPoolExecutor(max_workers=TEARDOWN_WORKERS, thread_name_prefix="netsim-teardown")
    return _TEARDOWN_POOL


def pending_pods(store: Store, pods: Iterable[dict[str, Any]] | None = None) -> list[str]:
    """Pods on ready nodes that are neither Running and Ready nor finished (what convergence waits for);
    pods whose sandbox failed are not among them (failed_pods). `pods`: every pod as a caller that keeps
    them already holds them (None: listed from the store)."""
    ready_nodes = {o.name(n) for n in store.list("Node") if node_ready(n)}
    out = []
    for pod in store.list("Pod") if pods is None else pods:
        if o.is_terminal(pod):
            continue
        nn = o.node_name(pod)
        if nn is not None and nn not in ready_nodes:
            continue
        if (pod.get("status") or {}).get(FAILURES) and not o.is_terminating(pod):
            continue  # its sandbox failed: reported and retried, not waited for (failed_pods)
        if o.is_terminating(pod) or o.phase(pod) != "Running" or not o.is_ready(pod):
            out.append(o.key(pod))
    return out


@dataclass
class ConvergeResult:
    converged: bool
    passes: int
    pending: list[str]


def run_until_converged(store: Store, kubelet: Kubelet, clock: Clock, timeout: float = 30.0, *,
                        rng: random.Random | None = None, config: Config | None = None,
                        poll: float = 0.05, max_passes: int = 10_000,
                        on_pass: Callable[[Store], None] | None = None, metrics: Any = None,
                        memory: dict[str, Any] | None = None) -> ConvergeResult:
    """Alternate controller passes and kubelet steps until converged or `timeout` (clock seconds)."""
    rng = rng or random.Random()
    memory = memory if memory is not None else {}
    deadline = clock.now() + timeout
    passes = 0
    while passes < max_passes:
        passes += 1
        res = reconcile_once(store, clock, rng=rng, config=config, metrics=metrics, memory=memory)
        writes = kubelet_step(store, kubelet, clock)
        if on_pass is not None:
            on_pass(store)
        if res.applied == 0 and writes == 0:
            pending = pending_pods(store)
            if not pending:
                return ConvergeResult(True, passes, [])
            if clock.now() >= deadline:
                return ConvergeResult(False, passes, pending)
            _idle(store, clock, poll)  # waiting on something outside the control plane (readiness, a node, time)
        elif clock.now() >= deadline:
            return ConvergeResult(False, passes, pending_pods(store))
    return ConvergeResult(False, passes, pending_pods(store))


def _idle(store: Store, clock: Clock, seconds: float) -> None:
    """Wait for a store write (from any process) or `seconds`; a fake clock just moves forward."""
    if isinstance(clock, FakeClock):
        clock.sleep(seconds)
    else:
        store.wait_for_change(store.current_rv(), seconds)


def run_forever(store: Store, kubelet: Kubelet, clock: Clock, stop: Callable[[], bool], *,
                resync: float = 1.0, rng: random.Random | None = None, config: Config | None = None,
                on_error: Callable[[Exception], None] | None = None) -> None:
    """The daemon's loop: reconcile and run kubelet work whenever the store changes, and at least every
    `resync` seconds (time-driven work: node heartbeats and grace periods, CronJob schedules, readiness).
    An exception in one pass is reported to `on_error` (the pass rolled back) and the loop goes on."""
    rng = rng or random.Random()
    while not stop():
        try:
            res = reconcile_once(store, clock, rng=rng, config=config)
            writes = kubelet_step(store, kubelet, clock)
        except Exception as e:  # noqa: BLE001 - a daemon must survive one bad pass
            if on_error is None:
                raise
            on_error(e)
            res, writes = PassResult(), 0
        if res.applied == 0 and writes == 0:
            _idle(store, clock, resync)


class _DryRun(Exception):
    pass


def planned_actions(store: Store, clock: Clock, *, config: Config | None = None) -> list[str]:
    """What one pass would do now, without doing it (the pass runs in a transaction that is rolled back).
    For a client such as `netsim apply` waiting, in another process, for the daemon to settle."""
    ctx = Context(now=clock.now(), rng=random.Random(0), config=config or Config())
    planned: list[str] = []
    try:
        with store.transaction() as tx:
            for name, controller in _controllers():
                actions = controller(Snapshot.load(tx), ctx)
                planned += [f"{name}: {a.describe()}" for a in actions]
                apply_actions(tx, actions, ctx.now)
            raise _DryRun
    except _DryRun:
        pass
    return planned


def is_converged(store: Store, clock: Clock, *, config: Config | None = None) -> tuple[bool, list[str]]:
    """(converged, what is still pending): no controller wants to act and every pod on a ready node is
    Running and Ready or finished."""
    pending = planned_actions(store, clock, config=config) + pending_pods(store)
    return not pending, pending
