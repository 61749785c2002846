"""The convergence marker an idle daemon writes each pass looks only at the pods that are not Running and
Ready (netsim/agents/pod_source.py keeps them per change), not at every pod: at 10x the pods an idle
marker looks at the same number of pods (none), and it names the same pending and failed pods as a walk
over every pod would (netsim.controlplane.loop pending_pods / failed_pods)."""

from __future__ import annotations

from netsim.agents.pod_source import PodSource
from netsim.controlplane.loop import FAILURES, failed_pods, pending_pods
from netsim.store import MemoryStore


def _pod(name: str, *, phase: str = "Running", ready: bool = True, node: str = "n1") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _store(n: int) -> MemoryStore:
    store = MemoryStore()
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                  "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    for i in range(n):
        store.create(_pod(f"p{i}"))
    return store


def test_an_idle_marker_looks_at_no_pod_at_ten_times_the_pods():
    for n in (100, 1000):
        source = PodSource(_store(n))
        assert len(source.current()) == n
        assert source.unsettled() == []  # today the marker walked all n pods every idle pass


def test_the_unsettled_pods_name_what_a_walk_over_every_pod_names():
    store = _store(50)
    source = PodSource(store)
    source.poll()
    store.update_status("Pod", "default", "p3", {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "False"}]})
    store.update_status("Pod", "default", "p4", {"phase": "Pending", FAILURES: 2, "conditions": [
        {"type": "PodReadyToStartContainers", "status": "False", "message": "no IP"}]})
    store.create(_pod("late", phase="Pending", ready=False))
    store.create(_pod("elsewhere", phase="Pending", ready=False, node="gone"))
    store.delete("Pod", "default", "p7")
    unsettled = source.unsettled()
    assert sorted(p["metadata"]["name"] for p in unsettled) == ["elsewhere", "late", "p3", "p4"]
    assert pending_pods(store, unsettled) == pending_pods(store) == ["default/late", "default/p3"]
    assert failed_pods(store, unsettled) == failed_pods(store) == {"default/p4": "no IP"}
    store.update_status("Pod", "default", "p3", {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}]})
    assert "p3" not in [p["metadata"]["name"] for p in source.unsettled()]
