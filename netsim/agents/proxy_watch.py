"""kube-proxy's own loop: a Service or EndpointSlice write reaches the nodes' rules without waiting for the
daemon's pass that happens to be running.

Upstream kube-proxy is its own process: its informers deliver each Service/EndpointSlice event to the
change trackers and call `Proxier.Sync`, which asks the proxier's BoundedFrequencyRunner for a run
(kubernetes pkg/util/async/bounded_frequency_runner.go `Run`: a run now if a token is free, else one as
soon as minInterval allows; runs requested meanwhile are coalesced into that one). Nothing else in the
cluster delays it. In the daemon the passes drive every agent in turn, so a write that landed while a long
pass ran (the kubelets, DNS, the controllers over every object) waited for that pass to end: seconds at
10,000 Services. `ProxyWatch` is the informer side: a thread that sleeps on the store's change
notification (netsim.storewatch: the SQLite write-ahead log's inotify event, or etcd's watch) and, on any
write or when a held-back sync or a running one is due, calls `KubeProxy.sync`, whose tracker turns
writes of other kinds into a no-op and whose SyncRunner is the token bucket. The passes keep calling
`sync` too (the same lock), so the drain pass's ordering (a removal synced before the kubelet step)
holds as before.

The thread reads the store through its own connection: the daemon's connection is held by a pass's
transaction for the whole of the controllers' round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from netsim.agents.kube_proxy import KubeProxy
from netsim.store import Store
from netsim.storewatch import ChangeWaiter

log = logging.getLogger("netsim.daemon")
IDLE_SECONDS = 1.0  # the longest sleep without a change (a missed notification costs at most this)


class ProxyWatch:
    """Drives `proxy.sync(alive)` on every store change and every due kube-proxy timer (module docstring)."""

    def __init__(self, proxy: KubeProxy, store: Store, alive: Callable[[str], bool], *,
                 idle_seconds: float = IDLE_SECONDS):
        self.proxy = proxy
        self.store = store
        self.alive = alive
        self.idle_seconds = idle_seconds
        self.syncs = 0  # sync calls made from this thread (the tests look)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="netsim-kube-proxy-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _timeout(self) -> float:
        """How long to sleep: until a held-back sync may run, or soon while syncs run (one finishing writes
        nothing to the store, and a node that was busy must sync the newer state), else the idle bound."""
        now = time.monotonic()
        with self.proxy.lock:
            times = [t - now for t in self.proxy.held.values()]
            if self.proxy.inflight or self.proxy.deferred:
                times.append(0.02)
        return max(0.0, min([self.idle_seconds, *times]))

    def _run(self) -> None:
        waiter = ChangeWaiter(self.store)
        try:
            rv = self.store.current_rv()
            while not self._stop.is_set():
                try:
                    self.proxy.sync(self.alive)  # what is in the store now (the first time: a relist)
                    self.syncs += 1
                    if waiter.wait(rv, self._timeout()):
                        rv = self.store.current_rv()
                except Exception:  # noqa: BLE001 - the passes still sync; this loop must not die of one error
                    log.exception("kube-proxy watch: sync failed")
                    self._stop.wait(0.2)
        finally:
            waiter.close()


__all__ = ["ProxyWatch"]
