"""The two store backends side by side: SQLite (a file on /run's tmpfs, as a cluster's store.db) and etcd
(a private etcd 3.4 on loopback with its data in a temporary directory, through netsim.etcd.store). No
cluster, no root needed.

Measured on each, as medians of several runs:
- `apply` of N pods in one call (one transaction: all or nothing);
- one-object write latency: `update_status` of one pod (a heartbeat-sized write, compare-and-swap);
- LIST of the N pods (`Store.list`);
- a reconcile-sized `transaction()` block: read 1 pod, list the pods, write 1 pod;
- watch latency: from a write through a second store object (another process's, as `netsim apply` and the
  daemon are) to `wait_for_change` returning and `changes_since` handing over the change.

    .venv/bin/python -m benchmarks.bench_store [N]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

from netsim.etcd import server
from netsim.etcd.store import EtcdStore
from netsim.store import SQLiteStore, Store, rfc3339


def pod(i: int) -> dict:
    now = rfc3339(time.time())
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"bench-{i:05d}", "namespace": "default", "labels": {"app": "bench"}},
            "spec": {"nodeName": f"node-{i % 50}", "containers": [{"name": "web", "image": "nginx",
                                                                   "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": f"10.244.{i // 250}.{i % 250 + 2}", "startTime": now,
                       "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                                      for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]}}


def median_ms(fn: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


@contextlib.contextmanager
def backends(tmp: str) -> Iterator[list[tuple[str, Callable[[], Store]]]]:
    path = f"{tmp}/store.db"
    out: list[tuple[str, Callable[[], Store]]] = [("sqlite", lambda: SQLiteStore(path))]
    if server.binary() is None:
        print("no etcd binary: etcd-server not installed (scripts/setup.sh installs it); SQLite only")
        yield out
        return
    rec = server.start("bench", tmp)
    try:
        out.append(("etcd", lambda: EtcdStore([rec.client_url], "/bench")))
        yield out
    finally:
        server.stop(tmp)


def watch_latency_ms(writer: Store, watcher: Store, runs: int = 15) -> float:
    times = []
    for i in range(runs):
        rv = watcher.current_rv()
        got: list[float] = []

        def watch(rv: int = rv, got: list[float] = got) -> None:
            watcher.wait_for_change(rv, 5)
            watcher.changes_since(rv)
            got.append(time.perf_counter())

        t = threading.Thread(target=watch)
        t.start()
        time.sleep(0.02)  # the watcher is waiting
        t0 = time.perf_counter()
        writer.update_status("Pod", "default", "bench-00000", {"phase": "Running", "n": i})
        t.join(10)
        times.append((got[0] - t0) * 1000)
    return statistics.median(times)


def bench(name: str, opener: Callable[[], Store], n: int) -> dict[str, float]:
    s, other = opener(), opener()
    pods = [pod(i) for i in range(n)]
    t0 = time.perf_counter()
    s.apply(pods)
    apply_ms = (time.perf_counter() - t0) * 1000
    reapply_ms = median_ms(lambda: s.apply([{**p, "metadata": {**p["metadata"], "labels": {"app": "b2"}}}
                                            for p in pods]), runs=3)
    write_ms = median_ms(lambda: s.update_status("Pod", "default", "bench-00001", {"phase": "Running",
                                                                                    "t": time.time()}), runs=31)
    list_ms = median_ms(lambda: s.list("Pod"))

    def block() -> None:
        with s.transaction() as tx:
            cur = tx.get("Pod", "default", "bench-00002")
            tx.list("Pod")
            tx.update_status("Pod", "default", "bench-00002", {**(cur or {}).get("status", {}), "t": time.time()})
    tx_ms = median_ms(block)
    watch_ms = watch_latency_ms(other, s)
    s.close()
    other.close()
    return {"apply": apply_ms, "apply (changed)": reapply_ms, "write 1": write_ms, "list": list_ms,
            "transaction": tx_ms, "watch": watch_ms}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    tmp = tempfile.mkdtemp(prefix="netsim-bench-store-", dir="/run" if os.access("/run", os.W_OK) else None)
    try:
        with backends(tmp) as bs:
            results = {name: bench(name, opener, n) for name, opener in bs}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    names = list(results)
    print(f"{n} pods; medians in ms")
    print(f"{'':<18}" + "".join(f"{b:>10}" for b in names))
    for metric in next(iter(results.values())):
        print(f"{metric:<18}" + "".join(f"{results[b][metric]:>10.1f}" for b in names))


if __name__ == "__main__":
    main()
