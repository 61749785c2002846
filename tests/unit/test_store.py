"""The store contract: CAS, change log, generation, apply atomicity, several processes writing at once,
compaction. Every contract test runs against each backend: SQLite on a file, in memory, and etcd (a
private etcd server of this module; each test under a fresh key prefix, as a new cluster would be)."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
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
    StoreLocked,
)
from tests.conftest import etcd_store, private_etcd


def pod(name: str, ns: str = "default", labels: dict | None = None, image: str = "nginx") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}


BACKENDS = ["sqlite", "memory", "etcd"]


def open_backend(kind: str, tmp_path, request, **kw):
    if kind == "etcd":
        return etcd_store(request.getfixturevalue("etcd_server"), **kw)
    return SQLiteStore(str(tmp_path / "store.db"), **kw) if kind == "sqlite" else MemoryStore(**kw)


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s = open_backend(request.param, tmp_path, request, clock=lambda: 1_700_000_000)
    yield s
    s.close()


def test_create_stamps_server_metadata(store):
    obj = store.create(pod("a"))
    md = obj["metadata"]
    assert int(md["resourceVersion"]) == store.current_rv() > 0 and md["generation"] == 1
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
    created = store.create(pod("a"))
    s = store.update_status("Pod", "default", "a", {"phase": "Running"})
    assert s["status"] == {"phase": "Running"} and s["metadata"]["generation"] == 1
    u = store.update(pod("a", image="x"))
    assert u["status"] == {"phase": "Running"} and u["metadata"]["generation"] == 2
    with pytest.raises(Conflict):
        store.update_status("Pod", "default", "a", {}, expected_rv=created["metadata"]["resourceVersion"])


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
    assert changes[-1].rv == store.current_rv() == int(gone["metadata"]["resourceVersion"])
    assert rv < changes[0].rv < changes[1].rv
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


class _ImpatientStore(SQLiteStore):
    BUSY_TIMEOUT_MS = 200


def test_a_write_lock_held_past_the_busy_timeout_names_the_stopped_holder(tmp_path):
    """A process stopped inside a write transaction keeps the write lock: the next writer fails after its busy
    timeout with StoreLocked (not sqlite3's bare "database is locked"), naming the store and the processes
    that have it open, the stopped one marked as stopped."""
    import signal
    import subprocess
    import sys
    path = str(tmp_path / "s.db")
    s = _ImpatientStore(path)  # opened (its schema written) before the holder takes the lock
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({path!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGSTOP)
        with pytest.raises(StoreLocked) as info:
            s.create(pod("before"))
        msg = str(info.value)
        assert path in msg and "0.2 s" in msg and f"pid {holder.pid} (python" in msg and "stopped" in msg, msg
        with pytest.raises(StoreLocked):
            _ImpatientStore(path)  # opening writes the schema, under the same lock
    finally:
        holder.kill()
        holder.wait()
    s.create(pod("after"))  # the holder gone, its lock went with it
    assert s.get("Pod", "default", "after") is not None


def _writer(opener, prefix: str, n: int) -> None:
    s = opener()
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


@pytest.mark.parametrize("backend", ["sqlite", "etcd"])
def test_two_processes_write_concurrently(backend, tmp_path, request):
    if backend == "sqlite":
        path = str(tmp_path / "store.db")
        s = SQLiteStore(path)

        def opener():
            return SQLiteStore(path)
    else:
        from netsim.etcd.store import EtcdStore
        s = etcd_store(request.getfixturevalue("etcd_server"))

        def opener():
            return EtcdStore(s.endpoints, s.prefix)
    s.create(pod("counter", labels={"n": "0"}))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(opener, p, 40)) for p in ("x", "y")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(s.list("Pod")) == 81
    assert s.get("Pod", "default", "counter")["metadata"]["labels"]["n"] == "80"
    rvs = [c.rv for c in s.changes_since(0)]
    assert rvs == sorted(rvs) and len(rvs) == len(set(rvs)) == 1 + 80 + 80
    s.close()


# -- change-log compaction (as etcd's, driven as kube-apiserver's compactor drives it) ---------------------

def _log_rows(store) -> int:
    with store._read() as ops:
        return ops.conn.execute("SELECT COUNT(*) FROM changes").fetchone()[0]


@pytest.fixture(params=["memory", "etcd"])
def lone_store(request):
    """A store whose history nobody else shares: etcd's compaction is of the whole server, so the etcd
    case gets a server of its own."""
    if request.param == "memory":
        s = MemoryStore()
        yield s
        s.close()
        return
    with private_etcd() as rec:
        s = etcd_store(rec)
        yield s
        s.close()


def test_compaction_drops_old_history_and_old_watches_get_410(lone_store):
    from netsim.store import Compacted
    s = lone_store
    rvs = [int(s.create(pod("a"))["metadata"]["resourceVersion"])]
    for i in range(10):
        rvs.append(int(s.update_status("Pod", "default", "a", {"phase": f"p{i}"})["metadata"]["resourceVersion"]))
    assert s.current_rv() == rvs[-1]
    assert s.compact(rvs[7]) >= 7
    assert s.compacted_rv() == rvs[7] and s.current_rv() == rvs[-1]
    assert [c.rv for c in s.changes_since(rvs[6])] == rvs[7:]  # from the compacted revision on: fine
    with pytest.raises(Compacted, match=rf"too old resource version: {rvs[2]} \({rvs[7]}\)"):
        s.changes_since(rvs[2])
    with pytest.raises(Compacted):
        s.kinds_changed_since(0)
    with pytest.raises(Compacted):
        s.changes_of(["Pod"], rvs[2])
    # Never past the newest entry: it carries the current resourceVersion. Numbering goes on after it.
    s.compact(rvs[-1] + 1000)
    assert s.current_rv() == rvs[-1] and s.compacted_rv() == rvs[-1]
    if isinstance(s, SQLiteStore):
        assert _log_rows(s) == 1
    assert [c.rv for c in s.changes_since(rvs[-1] - 1)] == [rvs[-1]]
    assert int(s.update_status("Pod", "default", "a", {})["metadata"]["resourceVersion"]) > rvs[-1]
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
    def rv(obj):
        return int(obj["metadata"]["resourceVersion"])
    r1 = rv(store.create(pod("a")))
    r2 = rv(store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}))
    r3 = rv(store.update_status("Pod", "default", "a", {"phase": "Running"}))
    r4 = rv(store.delete("Service", "default", "s"))
    assert r1 < r2 < r3 < r4
    assert [(c.rv, c.type, c.kind) for c in store.changes_of(["Service"], 0)] == [(r2, ADDED, "Service"),
                                                                               (r4, DELETED, "Service")]
    assert [c.rv for c in store.changes_of(("Pod", "Service"), r2)] == [r3, r4]
    assert store.changes_of(["Node"], 0) == []
    with store.transaction() as tx:  # inside a transaction it sees the transaction's own writes
        tx.create(pod("b"))
        assert [c.name for c in tx.changes_of(["Pod"], r3)] == ["b"]
    from netsim.etcd.store import EtcdStore
    if isinstance(store, EtcdStore):
        return  # etcd compacts the whole server, shared by this module: see the compaction test
    for _ in range(3):
        store.update_status("Pod", "default", "a", {})
    store.compact(store.current_rv())
    with pytest.raises(Compacted):
        store.changes_of(["Pod"], r2)


def test_one_encoding_per_write_keeps_resource_versions_and_the_size_limit_exact(store):
    """A write's resourceVersion is known before its row is written (one JSON encoding per write); numbers
    go on across transactions and compaction, and the size limit still counts a 20-digit resourceVersion.
    (SQLite's numbering: on etcd one transaction is one revision, see test_etcd_layout_and_versions.)"""
    from netsim.etcd.store import EtcdStore
    if isinstance(store, EtcdStore):
        pytest.skip("SQLite's change-log numbering: on etcd all writes of one transaction share its revision")
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


def test_the_store_refuses_an_object_over_etcds_limit(store):
    from netsim.model.limits import MAX_OBJECT_BYTES
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c"}], "volumes": [{"x": "y" * MAX_OBJECT_BYTES}]}}
    with pytest.raises(InvalidObject, match="etcdserver: request is too large"):
        store.create(obj)
    assert store.current_rv() == 0 and store.get("Pod", "default", "p") is None


def second_handle(store):
    """Another store object on the same data, as another process would open it (None: in memory)."""
    from netsim.etcd.store import EtcdStore
    if isinstance(store, MemoryStore):
        pytest.skip("an in-memory store has no second writer")
    return EtcdStore(store.endpoints, store.prefix) if isinstance(store, EtcdStore) else SQLiteStore(store.path)


def test_snapshot_reads_belong_to_one_resource_version(store):
    other = second_handle(store)
    store.create(pod("a"))
    with store.snapshot() as snap:
        rv = snap.current_rv()
        other.create(pod("b"))  # a write while the snapshot is open: not in it
        assert [p["metadata"]["name"] for p in snap.list("Pod")] == ["a"] and snap.current_rv() == rv
    assert store.current_rv() > rv and len(store.list("Pod")) == 2
    other.close()


def test_a_transaction_is_serializable_against_other_writers(store):
    """A block reads, another writer tries to write meanwhile, the block writes: the other write lands
    after the block (SQLite: BEGIN IMMEDIATE; etcd: the store lock), never lost nor interleaved."""
    other = second_handle(store)
    store.create(pod("counter", labels={"n": "0"}))
    done = threading.Event()

    def bump():
        cur = other.get("Pod", "default", "counter")
        cur["metadata"]["labels"]["n"] = str(int(cur["metadata"]["labels"]["n"]) + 10)
        # A read made while the block holds the store, then a write: CAS fails, retried by the caller.
        while True:
            try:
                other.update(cur)
                break
            except Conflict:
                cur = other.get("Pod", "default", "counter")
                cur["metadata"]["labels"]["n"] = str(int(cur["metadata"]["labels"]["n"]) + 10)
        done.set()

    with store.transaction() as tx:
        cur = tx.get("Pod", "default", "counter")
        t = threading.Thread(target=bump)
        t.start()
        time.sleep(0.3)
        assert not done.is_set()  # held off while the block is open
        cur["metadata"]["labels"]["n"] = str(int(cur["metadata"]["labels"]["n"]) + 1)
        tx.update(cur)
    t.join(10)
    assert done.is_set()
    assert store.get("Pod", "default", "counter")["metadata"]["labels"]["n"] == "11"
    other.close()


def test_etcd_layout_and_versions(etcd_server):
    """Keys as kube-apiserver lays them out, values without a resourceVersion (it is the mod_revision),
    one Txn per apply (all objects share its revision), ADDED = a PUT that created the key."""
    from netsim.etcd import client as ec
    s = etcd_store(etcd_server)
    raw = ec.Etcd([etcd_server.client_url])
    s.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    p = s.create(pod("a"))
    _, kvs, _ = raw.range(s.prefix + "/registry/pods/default/a")
    assert kvs[0].mod_revision == int(p["metadata"]["resourceVersion"])
    assert "resourceVersion" not in json.loads(kvs[0].value)["metadata"]
    assert raw.range(s.prefix + "/registry/minions/n1")[2] == 1
    applied = s.apply([pod("b"), pod("c"), {**pod("a"), "spec": {"containers": [{"name": "c", "image": "x"}]}}])
    assert len({o["metadata"]["resourceVersion"] for o in applied}) == 1
    changes = s.changes_since(int(p["metadata"]["resourceVersion"]))
    assert sorted((c.type, c.name) for c in changes) == [(ADDED, "b"), (ADDED, "c"), (MODIFIED, "a")]
    assert {c.rv for c in changes} == {int(applied[0]["metadata"]["resourceVersion"])}
    # A limit never splits a revision: a watcher resuming from the last rv it saw misses nothing.
    assert len(s.changes_since(int(p["metadata"]["resourceVersion"]), limit=1)) == 3
    raw.close()
    s.close()


def test_etcd_feed_resumes_after_etcd_restarts(tmp_path):
    """A watcher's resourceVersion stays good across a dropped connection (here: etcd itself restarting
    on its data): the feed resumes from it."""
    from netsim.etcd import server
    if server.binary() is None:
        pytest.skip("no etcd binary (Debian package etcd-server; scripts/setup.sh installs it)")
    from netsim.etcd.store import EtcdStore
    rec = server.start("resume", str(tmp_path))
    try:
        s = EtcdStore([rec.client_url], "/t")
        seen = int(s.create(pod("a"))["metadata"]["resourceVersion"])
        b = int(s.create(pod("b"))["metadata"]["resourceVersion"])
        assert [c.name for c in s.changes_since(seen)] == ["b"]  # from etcd's history; starts the feed cache
        deadline = time.monotonic() + 5
        while s._cache.start > b + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop(str(tmp_path))  # every connection drops, the feed cache's watch too
        rec = server.restart(str(tmp_path))
        s.create(pod("c"))
        assert [c.name for c in s.changes_since(seen)] == ["b", "c"]
        # The cache's watch resumed from the revision after the last it had: it answers, "c" included.
        assert s._cache.read(b, s.current_rv()) is not None
        assert [c.name for c in s.changes_since(b)] == ["c"]
        s.close()
    finally:
        server.stop(str(tmp_path))


def _die_holding_the_lock(endpoints, prefix) -> None:
    from netsim.etcd import store as etcd_store_mod
    etcd_store_mod.LOCK_TTL = 2  # the lease the lock is put on
    s = etcd_store_mod.EtcdStore(endpoints, prefix)
    with s.transaction() as tx:
        tx.create(pod("never"))
        os._exit(0)  # a crash inside the block: no commit, no release, no lease revocation


def test_etcd_lock_of_a_crashed_holder_goes_with_its_lease(etcd_server):
    s = etcd_store(etcd_server)
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_die_holding_the_lock, args=(s.endpoints, s.prefix))
    p.start()
    p.join(30)
    raw = s.etcd.range(s.lock_key)
    assert raw[2] == 1  # the dead process's lock is still there...
    t0 = time.monotonic()
    s.create(pod("after"))  # ...and a writer waits for its lease to expire, not for ever
    assert time.monotonic() - t0 < 10
    assert s.get("Pod", "default", "never") is None and s.get("Pod", "default", "after") is not None
    s.close()


def _die_holding_the_lock_for_long(endpoints, prefix) -> None:
    from netsim.etcd import store as etcd_store_mod
    s = etcd_store_mod.EtcdStore(endpoints, prefix)  # the lock on a lease of LOCK_TTL (10 s)
    with s.transaction() as tx:
        tx.create(pod("never"))
        os._exit(0)


def _ttl(s, lease: int) -> int:
    return int(s.etcd.call("/v3/lease/timetolive", {"ID": str(lease)}).get("TTL", -1))


def test_etcd_lock_of_a_dead_holder_of_this_machine_is_broken_at_once(etcd_server):
    # As SQLite's file lock goes with its holder's process, the etcd store's lock of a process of this machine
    # that is gone does not hold writers up for the rest of its lease: they find it dead and delete it.
    s = etcd_store(etcd_server)
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_die_holding_the_lock_for_long, args=(s.endpoints, s.prefix))
    p.start()
    p.join(30)
    _, kvs, _ = s.etcd.range(s.lock_key)
    lease = kvs[0].lease
    assert lease and _ttl(s, lease) > 0
    s.create(pod("after"))
    assert _ttl(s, lease) > 0  # written while the dead holder's lease still ran: it was not waited out
    assert s.etcd.range(s.lock_key)[2] == 0
    with s.transaction() as tx:  # and blocks take the lock again as usual
        tx.create(pod("next"))
    assert s.get("Pod", "default", "never") is None and s.get("Pod", "default", "next") is not None
    s.close()


def test_etcd_lock_of_a_live_or_remote_holder_is_waited_for(etcd_server):
    from netsim.etcd import client as ec
    s = etcd_store(etcd_server)
    lease = s.etcd.lease_grant(2)
    for owner in ("some-other-host:1:0", f"{socket.gethostname()}:{os.getpid()}:0"):  # remote; alive (this one)
        assert _ttl(s, lease) > 0 or (lease := s.etcd.lease_grant(2))
        s.etcd.txn([], [ec.put(s.lock_key, owner, lease)])
        s.create(pod(f"after-{len(owner)}"))
        assert _ttl(s, lease) <= 0, owner  # the write waited until the lease (and the lock with it) expired
    s.close()


def test_etcd_wait_for_change_never_raises_when_a_watch_cannot_be_set_up(etcd_server, monkeypatch):
    """A loaded etcd that does not answer a watch's creation in time: the wait polls until its deadline
    (it used to raise, which stopped the daemon waiting for its next pass)."""
    from netsim.etcd.client import EtcdError
    s = etcd_store(etcd_server)
    rv = s.current_rv()

    def slow_watch(*a, **kw):
        raise EtcdError("cannot watch etcd: timed out")
    monkeypatch.setattr(s.etcd, "watch", slow_watch)
    assert s.wait_for_change(rv, 0.0) is False and s.wait_for_change(rv, 0.1) is False
    threading.Timer(0.05, lambda: s.create(pod("x"))).start()
    assert s.wait_for_change(rv, 5) is True
    s.close()


def test_typed_reads_decode_once_per_resource_version(store):
    store.create(pod("a"))
    store.create(pod("b", labels={"app": "db"}))
    first = store.typed_list("Pod")
    assert [p.meta.name for p in first] == ["a", "b"] and store.object_cache().decodes == 2
    assert store.typed("Pod", "default", "a") is first[0] and store.typed_list("Pod", selector={"app": "db"}) == [first[1]]
    assert store.object_cache().decodes == 2
    store.update(pod("a", image="nginx:2"))
    assert store.typed("Pod", "default", "a").spec.containers[0].image == "nginx:2"
    assert store.object_cache().decodes == 3
    with store.transaction() as tx:
        assert tx.typed_list("Pod")[1] is first[1]


def test_a_failed_transaction_leaves_no_typed_object_behind(store):
    store.create(pod("a"))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        written = tx.update(pod("a", image="nginx:2"))
        assert tx.decode(written).spec.containers[0].image == "nginx:2"
        raise RuntimeError("roll back")
    store.update(pod("a", image="nginx:3"))
    assert store.typed("Pod", "default", "a").spec.containers[0].image == "nginx:3"
    assert [p.spec.containers[0].image for p in store.typed_list("Pod")] == ["nginx:3"]


def test_an_object_written_twice_in_one_transaction_decodes_as_committed(store):
    """On etcd every write of a transaction carries the one revision its Txn commits at: a pod created and
    then bound in one controller pass had its unbound version decoded at that resourceVersion, and the
    kubelet, handed the bound pod from the change log, got the unbound one from the parse cache."""
    with store.transaction() as tx:
        created = tx.create(pod("a"))
        assert tx.decode(created).spec.node_name is None
        bound = dict(created, spec={**created["spec"], "nodeName": "node-1"})
        tx.decode(tx.update(bound))
    committed = store.get("Pod", "default", "a")
    assert store.decode(committed).spec.node_name == "node-1"
    assert store.typed("Pod", "default", "a").spec.node_name == "node-1"


def test_an_optimistic_writes_placeholder_version_is_not_cached(store):
    """An object decoded at resourceVersion "0" (etcd's placeholder before an optimistic write commits) is
    not kept: the next one with that placeholder is decoded afresh."""
    cache = store.object_cache()
    a = dict(pod("a"), metadata={"name": "a", "namespace": "default", "resourceVersion": "0"})
    b = dict(pod("a", image="nginx:2"), metadata={"name": "a", "namespace": "default", "resourceVersion": "0"})
    assert cache.decode(a).spec.containers[0].image == "nginx"
    assert cache.decode(b).spec.containers[0].image == "nginx:2"
