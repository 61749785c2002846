"""What the store's readers keep in memory (issue #18: the daemon of 10,000 pods under 1 GB).

A watcher that keeps only the current state of each object (the controllers' informer cache, the agents'
change trackers) gets only the newest change of each object, and the superseded versions' bodies are never
decoded; the objects of one read share their key strings. Sizes, counts and identities only.
"""

from __future__ import annotations

import pytest

import netsim.store as store_mod
from netsim.agents.changes import ChangeTracker
from netsim.controlplane.state import SnapshotCache
from netsim.store import ADDED, DELETED, MODIFIED, MemoryStore, SQLiteStore


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    s = SQLiteStore(str(tmp_path / "store.db")) if request.param == "sqlite" else MemoryStore()
    yield s
    s.close()


@pytest.fixture
def decoded(monkeypatch) -> list[int]:
    """How many bodies each store read decoded."""
    counts: list[int] = []
    real = store_mod.loads_many

    def counting(bodies):
        counts.append(len(bodies))
        return real(bodies)

    monkeypatch.setattr(store_mod, "loads_many", counting)
    return counts


def _history(store) -> int:
    rv0 = store.current_rv()
    store.create(pod("a"))
    store.create(pod("b"))
    for i in range(4):
        store.update_status("Pod", "default", "a", {"phase": "Running", "podIP": f"10.0.0.{i}"})
    store.delete("Pod", "default", "b")
    store.create(pod("b"))  # deleted and made again: ADDED is its newest change
    store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
                  "spec": {}})
    store.delete("Pod", "default", "a")
    store.create(pod("c"))
    return rv0


def test_latest_changes_of_is_the_newest_change_of_each_object_in_order(store):
    rv0 = _history(store)
    everything = store.changes_of(["Pod"], rv0)
    newest: dict = {}
    for c in everything:
        newest.pop(c.name, None)
        newest[c.name] = c
    latest = store.latest_changes_of(["Pod"], rv0)
    assert latest == list(newest.values())
    assert [(c.name, c.type) for c in latest] == [("b", ADDED), ("a", DELETED), ("c", ADDED)]
    mid = everything[3].rv
    assert [(c.name, c.type) for c in store.latest_changes_of(["Pod", "Service"], mid)] == [
        ("b", ADDED), ("s", ADDED), ("a", DELETED), ("c", ADDED)]
    with store.transaction() as tx:  # inside a transaction: its own writes too
        tx.update_status("Pod", "default", "c", {"phase": "Pending"})
        assert [(c.name, c.type) for c in tx.latest_changes_of(["Pod"], rv0)][-1] == ("c", MODIFIED)


def test_a_tracker_poll_decodes_only_the_newest_version_of_each_object(store, decoded):
    tracker = ChangeTracker(store, {"Pod"})
    tracker.poll()
    decoded.clear()
    _history(store)
    batch = tracker.poll()
    assert sum(decoded) == 3  # a, b and c once each: 8 Pod changes were written
    assert set(batch.objects) == {("Pod", "default", "a"), ("Pod", "default", "b"), ("Pod", "default", "c")}
    assert batch.objects[("Pod", "default", "a")] is None


def test_the_informer_cache_decodes_only_the_newest_version_of_each_object(store):
    cache = SnapshotCache(("Pod", "Service"))
    cache.load(store)
    before = cache.decoded
    _history(store)
    snap = cache.load(store)
    assert cache.decoded - before == 4  # b, s, a (gone), c: 10 changes were written
    assert sorted(p["metadata"]["name"] for p in snap.of("Pod")) == ["b", "c"]


def test_objects_read_together_share_their_key_strings(store):
    for name in ("a", "b", "c"):
        store.create(pod(name))
    a, b, c = store.list("Pod")
    for x in (b, c):
        assert all(k1 is k2 for k1, k2 in zip(a, x, strict=True))
        assert all(k1 is k2 for k1, k2 in zip(a["metadata"], x["metadata"], strict=True))
    changes = store.latest_changes_of(["Pod"], 0)
    assert next(iter(changes[0].object["spec"]["containers"][0])) is \
        next(iter(changes[2].object["spec"]["containers"][0]))


def test_a_change_log_read_keeps_the_text_and_decodes_on_reading(store):
    """A work queue or the garbage collector reads every change since its last pass, mostly for kind and
    name: the entries hold their JSON text, not decoded objects, and equal the decoded entries."""
    rv0 = _history(store)
    for changes in (store.changes_of(["Pod", "Service"], rv0), store.changes_since(rv0)):
        assert len(changes) == 11
        for c in changes:
            assert not any(isinstance(v, dict) for v in vars(c).values())
            assert c.object == c.object and c.object is not c.object  # a fresh dict on each read
            assert c.object["metadata"]["name"] == c.name
    latest = store.latest_changes_of(["Pod", "Service"], rv0)
    assert [c for c in store.changes_of(["Pod", "Service"], rv0) if c in latest] == latest



def test_the_replicaset_controller_decodes_each_changed_pod_once(monkeypatch):
    """A change-log entry decodes its JSON on every read of `object`: a reader must read it once."""
    import json
    from types import SimpleNamespace

    from netsim.controlplane import replicaset

    reads: list[str] = []
    monkeypatch.setattr(store_mod.json, "loads", lambda text: reads.append(text) or json.JSONDecoder().decode(text))
    body = json.dumps({"metadata": {"name": "p", "namespace": "default", "labels": {"app": "a"}}})
    changes = [store_mod._TextChange(i, "MODIFIED", "Pod", "default", f"p{i}", body) for i in range(1, 4)]
    snap = SimpleNamespace(typed=lambda kind, ns: [])  # no ReplicaSet selects them
    assert replicaset._affected(changes, snap, {}) == set()  # type: ignore[arg-type]
    assert len(reads) == 3
