"""The store: CAS, change log, generation, apply atomicity, WAL, several processes writing at once."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from netsim.model.loader import parse_documents
from netsim.store import (
    ADDED,
    DELETED,
    MODIFIED,
    AlreadyExists,
    Conflict,
    InvalidObject,
    MemoryStore,
    NotFound,
    SQLiteStore,
)


def pod(name: str, ns: str = "default", labels: dict | None = None, image: str = "nginx") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    s = SQLiteStore(str(tmp_path / "store.db"), clock=lambda: 1_700_000_000) if request.param == "sqlite" \
        else MemoryStore(clock=lambda: 1_700_000_000)
    yield s
    s.close()


def test_create_stamps_server_metadata(store):
    obj = store.create(pod("a"))
    md = obj["metadata"]
    assert md["resourceVersion"] == "1" and md["generation"] == 1
    assert len(md["uid"]) == 36 and md["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert store.get("Pod", "default", "a") == obj
    with pytest.raises(AlreadyExists):
        store.create(pod("a"))


def test_namespace_defaults_and_cluster_scope(store):
    p = pod("a")
    del p["metadata"]["namespace"]
    assert store.create(p)["metadata"]["namespace"] == "default"
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "namespace": "x"}})
    assert store.get("Node", None, "n1")["metadata"]["name"] == "n1"
    assert store.get("Node", "whatever", "n1") is not None


def test_update_cas_conflict_and_generation(store):
    first = store.create(pod("a"))
    changed = pod("a", image="nginx:2")
    second = store.update(changed, expected_rv=first["metadata"]["resourceVersion"])
    assert second["metadata"]["generation"] == 2
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    with pytest.raises(Conflict, match="has been modified"):
        store.update(pod("a", image="nginx:3"), expected_rv=first["metadata"]["resourceVersion"])
    # metadata.resourceVersion in the object is a CAS too
    stale = dict(first)
    with pytest.raises(Conflict):
        store.update(stale)
    # labels only: generation stays
    relabel = store.get("Pod", "default", "a")
    relabel["metadata"]["labels"] = {"app": "other"}
    assert store.update(relabel)["metadata"]["generation"] == 2
    with pytest.raises(NotFound):
        store.update(pod("zz"))


def test_update_status_keeps_generation_and_update_keeps_status(store):
    store.create(pod("a"))
    s = store.update_status("Pod", "default", "a", {"phase": "Running"})
    assert s["status"] == {"phase": "Running"} and s["metadata"]["generation"] == 1
    u = store.update(pod("a", image="x"))
    assert u["status"] == {"phase": "Running"} and u["metadata"]["generation"] == 2
    with pytest.raises(Conflict):
        store.update_status("Pod", "default", "a", {}, expected_rv="1")


def test_list_namespace_and_selector(store):
    store.create(pod("a", labels={"app": "web"}))
    store.create(pod("b", labels={"app": "db"}))
    store.create(pod("c", ns="other", labels={"app": "web"}))
    assert [p["metadata"]["name"] for p in store.list("Pod")] == ["a", "b", "c"]
    assert [p["metadata"]["name"] for p in store.list("Pod", "default")] == ["a", "b"]
    assert [p["metadata"]["name"] for p in store.list("Pod", selector={"app": "web"})] == ["a", "c"]
    assert store.list("Service") == []


def test_change_log_and_delete(store):
    store.create(pod("a"))
    rv = store.current_rv()
    store.update_status("Pod", "default", "a", {"phase": "Running"})
    gone = store.delete("Pod", "default", "a")
    assert gone["status"]["phase"] == "Running"
    changes = store.changes_since(rv)
    assert [(c.type, c.name) for c in changes] == [(MODIFIED, "a"), (DELETED, "a")]
    assert [c.type for c in store.changes_since(0)] == [ADDED, MODIFIED, DELETED]
    assert changes[-1].rv == store.current_rv() == 3
    assert store.get("Pod", "default", "a") is None
    with pytest.raises(NotFound):
        store.delete("Pod", "default", "a")


def test_apply_creates_updates_and_keeps_status(store):
    objs = parse_documents("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
""")
    [d] = store.apply(objs)
    assert d["spec"]["replicas"] == 2 and d["metadata"]["generation"] == 1
    store.update_status("Deployment", "default", "web", {"replicas": 2})
    d2 = store.get("Deployment", "default", "web")
    d2["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    store.update(d2)
    rv = store.current_rv()
    [same] = store.apply(objs)  # unchanged: no write at all
    assert store.current_rv() == rv and same["status"] == {"replicas": 2}
    changed = objs[0].to_dict()
    changed["spec"]["replicas"] = 5
    [d3] = store.apply([changed])
    assert d3["spec"]["replicas"] == 5 and d3["metadata"]["generation"] == 2
    assert d3["status"] == {"replicas": 2}
    assert d3["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"


def test_apply_is_all_or_nothing(store):
    store.create(pod("a"))
    rv = store.current_rv()
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {}}
    with pytest.raises(InvalidObject):
        store.apply([pod("a", image="new"), pod("b"), bad])
    assert store.current_rv() == rv
    assert store.get("Pod", "default", "b") is None
    assert store.get("Pod", "default", "a")["spec"]["containers"][0]["image"] == "nginx"


def test_transaction_rolls_back_on_error(store):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.create(pod("a"))
        assert tx.get("Pod", "default", "a") is not None  # reads see own writes
        raise RuntimeError("boom")
    assert store.get("Pod", "default", "a") is None and store.current_rv() == 0


def test_events_table(store):
    assert store.append_events([{"reason": "A"}, {"reason": "B"}]) == 2
    assert [e["reason"] for e in store.events_since(1)] == ["B"]
    assert store.current_rv() == 0  # events do not touch the object change log


def test_wait_for_change(store):
    rv = store.current_rv()
    t0 = time.monotonic()
    assert store.wait_for_change(rv, 0.05) is False
    assert time.monotonic() - t0 >= 0.05
    threading.Timer(0.05, lambda: store.create(pod("late"))).start()
    assert store.wait_for_change(rv, 5) is True


def test_wal_mode(tmp_path):
    s = SQLiteStore(str(tmp_path / "s.db"))
    assert s.journal_mode() == "wal"


def _writer(path: str, prefix: str, n: int) -> None:
    s = SQLiteStore(path)
    for i in range(n):
        s.create(pod(f"{prefix}-{i}"))
    # contended read-modify-write on one shared object, retried on Conflict as controllers do
    for _ in range(n):
        while True:
            cur = s.get("Pod", "default", "counter")
            count = int(cur["metadata"]["labels"]["n"])
            cur["metadata"]["labels"]["n"] = str(count + 1)
            try:
                s.update(cur)
                break
            except Conflict:
                continue
    s.close()


def test_two_processes_write_concurrently(tmp_path):
    path = str(tmp_path / "store.db")
    s = SQLiteStore(path)
    s.create(pod("counter", labels={"n": "0"}))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, p, 40)) for p in ("x", "y")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(s.list("Pod")) == 81
    assert s.get("Pod", "default", "counter")["metadata"]["labels"]["n"] == "80"
    rvs = [c.rv for c in s.changes_since(0)]
    assert rvs == sorted(rvs) and len(rvs) == len(set(rvs)) == 1 + 80 + 80


# -- change-log compaction (as etcd's, driven as kube-apiserver's compactor drives it) ---------------------

def _log_rows(store) -> int:
    with store._read() as ops:
        return ops.conn.execute("SELECT COUNT(*) FROM changes").fetchone()[0]


def test_compaction_drops_old_history_and_old_watches_get_410():
    from netsim.store import Compacted, MemoryStore
    s = MemoryStore()
    s.create(pod("a"))
    for i in range(10):
        s.update_status("Pod", "default", "a", {"phase": f"p{i}"})
    assert s.current_rv() == 11
    assert s.compact(8) == 7
    assert s.compacted_rv() == 8 and s.current_rv() == 11
    assert [c.rv for c in s.changes_since(7)] == [8, 9, 10, 11]  # from the compacted revision on: fine
    with pytest.raises(Compacted, match=r"too old resource version: 3 \(8\)"):
        s.changes_since(3)
    with pytest.raises(Compacted):
        s.kinds_changed_since(0)
    # Never the newest entry: it carries the current resourceVersion. Numbering goes on after it.
    s.compact(1000)
    assert s.current_rv() == 11 and _log_rows(s) == 1
    assert s.update_status("Pod", "default", "a", {})["metadata"]["resourceVersion"] == "12"
    assert s.get("Pod", "default", "a") is not None  # objects are never compacted, only their history


def test_the_compactor_keeps_one_interval_of_history_and_bounds_the_log():
    from netsim.store import Compactor, MemoryStore
    s = MemoryStore()
    s.create(pod("a"))
    c = Compactor(s, interval=300)
    now = 0.0
    sizes = []
    for _ in range(40):  # 40 "minutes" of 60 heartbeats each (one a second)
        for _ in range(60):
            s.update_status("Pod", "default", "a", {"t": now})
            now += 1
            c.tick(now)
        sizes.append(_log_rows(s))
    assert max(sizes[10:]) <= 2 * 300 + 1  # never more than two intervals of writes, however long it runs
    assert s.compacted_rv() > 0
    # A watcher one interval behind still has its history.
    s.changes_since(s.current_rv() - 299)


def test_changes_of_watches_only_the_kinds_asked_for(store):
    from netsim.store import Compacted
    store.create(pod("a"))
    store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}})
    store.update_status("Pod", "default", "a", {"phase": "Running"})
    store.delete("Service", "default", "s")
    assert [(c.rv, c.type, c.kind) for c in store.changes_of(["Service"], 0)] == [(2, ADDED, "Service"),
                                                                               (4, DELETED, "Service")]
    assert [c.rv for c in store.changes_of(("Pod", "Service"), 2)] == [3, 4]
    assert store.changes_of(["Node"], 0) == []
    with store.transaction() as tx:  # inside a transaction it sees the transaction's own writes
        tx.create(pod("b"))
        assert [c.name for c in tx.changes_of(["Pod"], 3)] == ["b"]
    for _ in range(3):
        store.update_status("Pod", "default", "a", {})
    store.compact(store.current_rv())
    with pytest.raises(Compacted):
        store.changes_of(["Pod"], 2)


def test_one_encoding_per_write_keeps_resource_versions_and_the_size_limit_exact(store):
    """A write's resourceVersion is known before its row is written (one JSON encoding per write); numbers
    go on across transactions and compaction, and the size limit still counts a 20-digit resourceVersion."""
    from netsim.model.limits import MAX_OBJECT_BYTES
    with store.transaction() as tx:
        rvs = [tx.create(pod(f"p{i}"))["metadata"]["resourceVersion"] for i in range(3)]
    assert rvs == ["1", "2", "3"] and store.get("Pod", "default", "p2")["metadata"]["resourceVersion"] == "3"
    assert [c.object["metadata"]["resourceVersion"] for c in store.changes_since(0)] == rvs
    store.compact(store.current_rv() + 10)
    assert store.create(pod("q"))["metadata"]["resourceVersion"] == "4"
    big = pod("big")
    big["metadata"]["annotations"] = {"a": ""}
    import json
    big_body = dict(big, metadata={**big["metadata"], "uid": "0" * 36, "creationTimestamp": "2023-11-14T22:13:20Z",
                                   "generation": 1, "namespace": "default", "resourceVersion": "0" * 20})
    room = MAX_OBJECT_BYTES - len(json.dumps(big_body, sort_keys=True).encode())
    big["metadata"]["annotations"] = {"a": "x" * (room + 1)}
    with pytest.raises(InvalidObject, match="too long|too large|exceeds|bytes"):
        store.create(big)
    big["metadata"]["annotations"] = {"a": "x" * room}
    assert store.create(big)["metadata"]["resourceVersion"] == "5"
