"""kube-proxy on every node of a cluster: the store-facing side of the node agents (netsim/node/proxy_agent.py).

Each node's kube-proxy watches Services and EndpointSlices through its service/endpoints change trackers
(netsim.proxy.tracker, fed here from the store's change log: a relist the first time and after the log was
compacted past it), is paced by its minSyncPeriod/syncPeriod (netsim.node.sync_runner) and the watch delay
of spec.timing, and syncs on the data-plane pool beside the daemon's passes: a node busy with an older state
syncs again once done; a change that takes something away (an endpoint no longer ready, a port gone) is
synced on every node before the pass goes on, since the next kubelet step may remove the sandbox behind it.
Every syncPeriod each node checks its rules are still there (ipt.Monitor) and resyncs in full if not.

Constructed with the cluster's identity (spec, and each node's view: netsim.model.nodeview.NodeView of its
Node object), a kernel, the store and a pool; `sync(alive)` and
`check(alive)` once per pass, `pending()` for the convergence marker, `wakeups(now)` for the loop's sleep.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from concurrent.futures import wait as futures_wait
from typing import Any

from netsim import naming
from netsim.fanout import fan_out
from netsim.kernel.api import Kernel
from netsim.model.cluster import ClusterSpec
from netsim.model.nodeview import NodeView
from netsim.node.proxy_agent import ProxyAgent
from netsim.node.sync_runner import SyncRunner
from netsim.proxy.config import proxy_config
from netsim.proxy.tracker import ProxyTracker, ServiceKey
from netsim.store import Compacted, Store

log = logging.getLogger("netsim.daemon")
POLL_SECONDS = 0.1  # how soon an otherwise idle loop looks again at running kube-proxy syncs
EventFn = Callable[[str, str, str, str, float], None]  # (object ref, reason, message, actor, ms)


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """kube-proxy is driven from two threads (its own watch, netsim.agents.proxy_watch, and the daemon's
    passes): one of them at a time."""
    @functools.wraps(method)
    def run(self: KubeProxy, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)
    return run


class KubeProxy:
    """kube-proxy on every node (see the module docstring)."""

    def __init__(self, spec: ClusterSpec, nodes: Mapping[str, NodeView], kernel: Kernel, store: Store,
                 pool: Executor, typed: Callable[[Mapping[str, Any]], Any | None], events: EventFn,
                 guard: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None):
        self.store = store
        self.pool = pool
        self.timing = spec.timing
        self.events = events
        self.guard = guard or (lambda name: contextlib.nullcontext())
        # spec.kubeProxy reaches every node's kube-proxy. Partial syncs leave top-level chains alone when
        # their rules did not change: the kernel ends up with the same rules kube-proxy's rewrite would
        # give, without nf_tables revalidating them.
        cfg = proxy_config(spec, skip_unchanged_top_chains=True)
        # Each node's view is the one node view of its Node object (netsim.model.nodeview.NodeView).
        self.agents = {name: ProxyAgent(kernel, naming.node_ns(spec.name, name), view, cfg)
                       for name, view in nodes.items()}
        # minSyncPeriod / syncPeriod pace each node's kube-proxy (netsim.node.sync_runner).
        kp = spec.kube_proxy
        started = time.monotonic()
        # spec.timing: the larger of its minSyncPeriod and kubeProxy's; each node sees changes after its own
        # watch delivery delay (_stale_since).
        self.runners = {name: SyncRunner(max(kp.min_sync_period, spec.timing.kube_proxy_min_sync_period),
                                         kp.sync_period, started)
                        for name in nodes}
        self._stale_since: dict[str, float] = {}  # node -> when it first missed the current state
        self.held: dict[str, float] = {}  # node -> monotonic time its held-back sync may run
        self.force: set[str] = set()  # nodes whose rules were lost: sync now, whatever the pace
        # Each node's kube-proxy is its own process upstream: its sync runs on the data-plane pool while the
        # passes go on (a round of a hundred restores no longer holds up the kubelets); a node whose sync is
        # still running is synced again, with the state of that moment, once it is done.
        self.inflight: dict[str, Future] = {}
        self.deferred: set[str] = set()  # stale, but busy syncing an older state
        # Per Service: its ready (port, endpoint IP)s and its ports as last synced, kept for the Services a
        # change touched only (a sync after a one-endpoint change looks at one Service, not at all of them).
        self._served: dict[ServiceKey, tuple[frozenset[tuple[Any, str]], frozenset[Any]]] = {}
        self._touched: set[ServiceKey] = set()  # Services changed since the last sync looked at them
        # Per node: the Services changed since its last sync was started. Handed to the node's agent with the
        # sync, so its render looks at those Services only (kube-proxy's serviceChanged / endpointsChanged
        # sets: pkg/proxy/iptables/proxier.go syncProxyRules, from the change trackers' PendingChanges()).
        self._changed: dict[str, set[ServiceKey]] = {name: set() for name in nodes}
        self.lock = threading.RLock()
        self.synced: dict[str, int] = {}  # node -> the tracker generation its rules hold
        # kube-proxy's service/endpoints change trackers, fed from the store's change log (netsim.proxy.tracker):
        # a sync after a one-endpoint change parses one slice and rebuilds one Service's endpoint lists.
        self.tracker = ProxyTracker(typed)
        self._rv: int | None = None  # the change log is merged into the tracker up to here

    def track_changes(self) -> None:
        """Merge the Service/EndpointSlice changes since the last call into the proxy tracker (a relist the
        first time and after the change log was compacted past us, as an informer relists on 410)."""
        rv = self.store.current_rv()
        changes = None
        if self._rv is not None:
            try:
                changes = self.store.changes_of(ProxyTracker.KINDS, self._rv)
            except Compacted:
                changes = None
        if changes is None:
            self.tracker.relist(self.store.list("Service"), self.store.list("EndpointSlice"))
        else:
            if not changes:
                self._rv = rv
                return
            self.tracker.record_changes(changes)
            rv = max([rv, *(c.rv for c in changes)])
        self._rv = rv
        changed = self.tracker.update().services
        self._touched |= changed
        if changed:
            for keys in self._changed.values():
                keys |= changed

    def _takes_away(self) -> bool:
        """Did a change since the last look take something away (a ready endpoint, a service port)? Only
        the Services the changes touched are compared."""
        if not self._touched:
            return False
        eps = self.tracker.endpoints()
        shrinks = False
        for key in self._touched:
            ports = self.tracker.ports_of(key)
            now = (frozenset((sp.key, e.ip) for sp in ports for e in eps.get(sp.key, ()) if e.ready),
                   frozenset(sp.key for sp in ports))
            before = self._served.pop(key, None)
            if before is not None and (before[0] - now[0] or before[1] - now[1]):
                shrinks = True
            if ports:
                self._served[key] = now
        self._touched.clear()
        return shrinks

    def reap(self) -> None:
        for n, f in list(self.inflight.items()):
            if f.done():
                del self.inflight[n]
                if f.exception() is not None:  # health says "failing"; the node stays stale and is retried
                    log.warning("kube-proxy sync on %s failed: %s", n, f.exception())

    @_locked
    def sync(self, alive: Callable[[str], bool]) -> None:
        """Take in the Service/EndpointSlice changes and sync the live nodes whose rules are behind, as
        their pacing allows (see the class docstring)."""
        self.reap()
        self.track_changes()
        fp = self.tracker.generation
        # A change that takes something away (an endpoint no longer ready, a service port gone) is synced
        # before the pass goes on, as before: the next kubelet step may tear down the sandbox behind it (the
        # drain pass). One that only adds (scale-up) is synced beside the passes.
        shrinks = self._takes_away()
        if shrinks:
            futures_wait(list(self.inflight.values()))
            self.reap()
        stale = [n for n in self.agents if alive(n) and self.synced.get(n) != fp]
        self.deferred = {n for n in stale if n in self.inflight}
        stale = [n for n in stale if n not in self.deferred]
        # spec.timing's watch delay: a node's kube-proxy hears of the first change it missed only so long after
        # it happened (then it syncs whatever the state is by then). minSyncPeriod: a node whose kube-proxy
        # synced too recently waits for its runner's next token; the change is picked up then (coalesced with
        # whatever else changed meanwhile).
        now = time.monotonic()
        timing = self.timing
        since = self._stale_since
        for n in list(since):
            if n not in stale:
                del since[n]
        for n in stale:
            since.setdefault(n, now)

        def heard(n: str) -> float:
            return since[n] + timing.delay_for(n)
        todo = [n for n in stale if n in self.force
                or (now >= heard(n) and self.runners[n].try_run(now))]
        self.held = {n: max(now + self.runners[n].wait(now), heard(n)) for n in stale if n not in todo}
        for n in todo:
            since.pop(n, None)
        self.force -= set(todo)
        if not todo:
            return
        # A copy of the map: the tracker updates it in place on the next pass while these syncs may still run.
        sps, eps = self.tracker.services(), dict(self.tracker.endpoints())
        changed = {}
        for n in todo:
            keys, self._changed[n] = self._changed[n], set()
            changed[n] = {f"{ns}/{svc}": self.tracker.ports_of((ns, svc)) for ns, svc in keys}

        def sync(name: str) -> None:
            with self.guard(f"kube-proxy/{name}"):
                report = self.agents[name].sync(sps, eps, changed=changed[name])
            self.synced[name] = fp
            c = report.counts
            self.events(f"node/{name}", "ProxySynced",
                        f"{'full' if report.full else 'partial'} sync: {c.service_ports} service ports, "
                        f"{c.nat_rules} nat rules, {report.payload_bytes} bytes", f"kube-proxy/{name}", report.ms)
        for n in todo:
            self.inflight[n] = self.pool.submit(sync, n)
        if shrinks:
            futures_wait([self.inflight[n] for n in todo])
            self.reap()

    @_locked
    def check(self, alive: Callable[[str], bool]) -> None:
        """syncPeriod: each live node's kube-proxy checks its rules are still there (ipt.Monitor); a node
        whose rules were lost gets a full sync right away."""
        now = time.monotonic()
        due = [n for n, r in self.runners.items() if alive(n) and r.check_due(now) <= 0
               and n not in self.inflight]
        if not due:
            return

        def check(name: str) -> None:
            self.runners[name].checked(time.monotonic())
            if not self.agents[name].rules_intact():
                self.synced.pop(name, None)
                self.force.add(name)
                self.events(f"node/{name}", "ProxyRulesLost", "kube-proxy's chains lost their rules: full resync",
                            f"kube-proxy/{name}", 0.0)
        fan_out(self.pool, check, due)

    @_locked
    def pending(self) -> list[str]:
        """Syncs held back by minSyncPeriod or still running (the data plane does not match the store yet)."""
        self.reap()
        return ([f"kube-proxy on {n}: sync held back by minSyncPeriod" for n in sorted(self.held)]
                + [f"kube-proxy on {n}: syncing" for n in sorted(set(self.inflight) | self.deferred)])

    @_locked
    def forget(self, node: str) -> None:
        """The node's rules are unknown (it failed): sync it again when it is back."""
        self.synced.pop(node, None)

    @_locked
    def due(self, now: float) -> bool:
        """A sync must run this pass whatever changed: a forced, held-back, running or deferred one."""
        return (bool(self.force) or any(t <= now for t in self.held.values()) or bool(self.inflight)
                or bool(self.deferred))

    @_locked
    def wakeups(self, now: float, alive: Callable[[str], bool]) -> list[float]:
        """Seconds until each held-back sync or periodic rule check is due."""
        times = [t - now for t in self.held.values()]
        if self.inflight or self.deferred:
            times.append(POLL_SECONDS)  # a sync finishing writes nothing to the store: look again soon
        times += [r.check_due(now) for n, r in self.runners.items() if alive(n)]
        return times


__all__ = ["KubeProxy"]
