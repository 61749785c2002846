"""delete_objects: pods through termination, all targets or none, kubectl's --grace-period/--force."""

from __future__ import annotations

import pytest

from netsim.controlplane.deletion import Target, delete_objects, effective_grace
from netsim.model.errors import Source, UsageError
from netsim.store import MemoryStore


def _pod(name: str, node: str | None = "node-1", phase: str = "Running") -> dict:
    spec = {"containers": [{"name": "c", "image": "x"}], "terminationGracePeriodSeconds": 7}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec,
            "status": {"phase": phase}}


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    for p in (_pod("bound"), _pod("unbound", node=None), _pod("done", phase="Succeeded")):
        s.create(p)
    s.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
              "spec": {"ports": [{"port": 80}]}})
    return s


def test_bound_pod_is_marked_not_removed(store):
    lines = delete_objects(store, [Target("Pod", "default", "bound")], 1_700_000_000.0)
    pod = store.get("Pod", "default", "bound")
    assert lines == ["pod/bound deleted"]
    assert pod["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z"
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 7


def test_unbound_finished_and_forced_pods_go_at_once(store):
    delete_objects(store, [Target("Pod", "default", "unbound"), Target("Pod", "default", "done")], 0.0)
    assert store.get("Pod", "default", "unbound") is None and store.get("Pod", "default", "done") is None
    delete_objects(store, [Target("Pod", "default", "bound")], 0.0, grace_period=0, force=True)
    assert store.get("Pod", "default", "bound") is None


def test_a_missing_target_deletes_nothing_and_is_named(store):
    with pytest.raises(UsageError) as e:
        delete_objects(store, [Target("Service", "default", "web"), Target("Pod", "default", "bound"),
                               Target("Service", "default", "ghost", Source("x.yaml", 2))], 0.0)
    assert "x.yaml (document 3): Service default/ghost: not found" in str(e.value)
    assert store.get("Service", "default", "web") is not None
    assert "deletionTimestamp" not in store.get("Pod", "default", "bound")["metadata"]
    delete_objects(store, [Target("Service", "default", "ghost"), Target("Service", "default", "web")], 0.0,
                   ignore_not_found=True)
    assert store.get("Service", "default", "web") is None


@pytest.mark.parametrize("grace,force,want", [(-1, False, None), (None, False, None), (0, False, 1), (0, True, 0),
                                              (-1, True, 0), (5, False, 5), (5, True, 5)])
def test_kubectl_grace_period_reading(grace, force, want):
    assert effective_grace(grace, force) == want


def test_deleting_a_namespace_deletes_its_contents_pods_through_termination(store):
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    other = _pod("elsewhere")
    other["metadata"]["namespace"] = "other"
    store.create(other)
    delete_objects(store, [Target("Namespace", None, "default")], 0.0)
    assert store.get("Namespace", None, "default") is None
    assert store.get("Service", "default", "web") is None and store.get("Pod", "default", "unbound") is None
    assert "deletionTimestamp" in store.get("Pod", "default", "bound")["metadata"]  # the kubelet removes it
    assert "deletionTimestamp" not in store.get("Pod", "other", "elsewhere")["metadata"]


def test_a_pod_that_does_not_parse_goes_at_once_and_the_rest_still_terminate(store):
    """The pod is read typed (the parse cache); one written around validation (no kubelet runs it) is
    removed at once, and the delete's other targets are not held up by it."""
    bad = _pod("bad")
    bad["spec"]["containers"] = [{"name": "c", "image": "x", "ports": [{"containerPort": "eighty"}]}]
    store.create(bad)
    delete_objects(store, [Target("Pod", "default", "bad"), Target("Pod", "default", "bound")], 0.0)
    assert store.get("Pod", "default", "bad") is None
    assert store.get("Pod", "default", "bound")["metadata"]["deletionTimestamp"]
