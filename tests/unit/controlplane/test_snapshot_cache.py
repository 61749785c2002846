"""The controllers' informer cache: a pass decodes the objects written since the last one, not every object,
and what it hands out is what a fresh listing would give."""

from __future__ import annotations

import pytest

from netsim.controlplane import loop
from netsim.controlplane.loop import SNAPSHOT_CACHE
from netsim.controlplane.state import Snapshot, SnapshotCache

from .conftest import deployment


def test_a_quiet_pass_decodes_only_what_changed(h):
    h.add_nodes(2)
    h.apply(deployment("web", replicas=20))
    assert h.converge().converged
    cache = h.memory[SNAPSHOT_CACHE]
    h.once()
    before = cache.decoded
    pod = h.pods()[0]
    h.store.update_status("Pod", "default", pod["metadata"]["name"], {**pod["status"], "podIP": "10.244.7.7"})
    h.once()
    assert cache.decoded - before == 1  # one pod written: one object decoded (a full load: 20 pods + the rest)
    snap = cache.load(h.store)
    fresh = Snapshot.load(h.store)
    assert snap.objects == fresh.objects


def test_a_rolled_back_pass_makes_the_next_load_list_again(h, monkeypatch):
    h.add_nodes(1)
    h.apply(deployment("web", replicas=2))
    assert h.converge().converged
    cache = h.memory[SNAPSHOT_CACHE]

    def explode(store, actions, now, on_skip=None):
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "phantom", "namespace": "default"},
                      "spec": {"containers": [{"name": "c", "image": "x"}]}})
        cache.load(store)  # the phantom is in the cache now, then the transaction rolls back
        raise RuntimeError("boom")
    monkeypatch.setattr(loop, "apply_actions", explode)
    with pytest.raises(RuntimeError):
        h.once()
    monkeypatch.undo()
    assert h.store.get("Pod", "default", "phantom") is None
    snap = cache.load(h.store)
    assert snap.get("Pod", "default", "phantom") is None


def test_the_check_catches_a_snapshot_object_changed_in_place(h):
    h.add_nodes(1)
    h.apply(deployment("web", replicas=1))
    assert h.converge().converged
    cache = h.memory[SNAPSHOT_CACHE]
    snap = cache.load(h.store)
    snap.of("Pod")[0]["metadata"]["labels"]["oops"] = "x"
    with pytest.raises(AssertionError, match="out of step"):
        cache.load(h.store)
    assert SnapshotCache.CHECK  # on for every controller test (conftest)


def test_garbage_collection_follows_the_change_and_still_collects(h, monkeypatch):
    from netsim.controlplane import nodes as gc_mod
    from netsim.controlplane import objects as o
    h.add_nodes(1)
    h.apply(deployment("web", replicas=3))
    assert h.converge().converged
    h.once()
    looked = 0
    real = gc_mod._owner_exists

    def counting(*args):
        nonlocal looked
        looked += 1
        return real(*args)
    monkeypatch.setattr(gc_mod, "_owner_exists", counting)
    h.once()
    assert looked == 0  # a quiet pass: no owner looked up (a full pass checks every owned object)
    # A pod written with an owner that does not exist is collected by the incremental pass...
    h.store.create({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "orphan", "namespace": "default", "ownerReferences": [
                        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": "nope",
                         "controller": True}]},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}})
    h.once()
    assert 0 < looked < 5
    assert h.store.get("Pod", "default", "orphan") is None
    # ... and deleting an owner collects its dependents (a full pass).
    rs = h.store.list("ReplicaSet")[0]
    monkeypatch.undo()
    h.store.delete("Deployment", "default", "web")
    h.store.delete("ReplicaSet", "default", o.name(rs))
    h.converge(timeout=5)
    assert h.pods() == []


def test_an_owner_lookup_by_kind_walks_only_that_kind(monkeypatch):
    """A Deployment's ReplicaSets are found without looking at every Service and EndpointSlice: at 10,000
    Services the walk over all objects on each pass was most of an idle daemon's CPU."""
    from netsim.controlplane import objects as objs
    from netsim.controlplane import state as st

    deploy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "uid": "d1"}}
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "default", "uid": "r1",
                                             "ownerReferences": [{"uid": "d1", "controller": True}]}}
    services = [{"kind": "Service", "metadata": {"name": f"s{i}", "namespace": "default", "uid": f"s{i}"}}
                for i in range(500)]
    snap = st.Snapshot({"Deployment": [deploy], "ReplicaSet": [rs], "Service": services}, lambda x: x)
    looked = []
    real = objs.controller_ref
    monkeypatch.setattr(objs, "controller_ref", lambda obj: looked.append(obj["kind"]) or real(obj))
    assert snap.owned(deploy, "ReplicaSet") == [rs]
    assert "Service" not in looked and looked == ["ReplicaSet"]
    assert snap.owned(deploy) == [rs]  # without a kind: every object, as before
