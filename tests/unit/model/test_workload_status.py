"""Typed status of the apps/v1 workloads (issue #16 item 1): Deployment, ReplicaSet and StatefulSet carry the
controllers' replica counts, observedGeneration and conditions; DaemonSet its node counts. Read leniently
(the status strategies accept what the controller writes), decoded once per version by the store."""

from __future__ import annotations

import copy

from netsim.model.status import DaemonSetStatus, WorkloadStatus, daemonset_status, workload_status
from netsim.store import MemoryStore

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def workload(kind: str, status: dict | None = None) -> dict:
    spec = {"selector": {"matchLabels": {"app": "web"}}, "template": copy.deepcopy(TEMPLATE)}
    if kind != "DaemonSet":
        spec["replicas"] = 3
    out = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "namespace": "default"}, "spec": spec}
    if status is not None:
        out["status"] = status
    return out


def test_deployment_replicaset_and_statefulset_status_are_typed_from_the_store():
    store = MemoryStore()
    for kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        store.create(workload(kind))
        store.update_status(kind, "default", "web", {
            "replicas": 3, "readyReplicas": 2, "availableReplicas": 1, "updatedReplicas": 3,
            "observedGeneration": 1, "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]})
        typed = store.typed(kind, "default", "web")
        st = typed.status
        assert isinstance(st, WorkloadStatus), kind
        assert (st.replicas, st.ready_replicas, st.available_replicas, st.updated_replicas) == (3, 2, 1, 3)
        assert st.observed_generation == 1 and st.observed(1) and not st.observed(2)
        assert st.condition("Available").reason == "MinimumReplicasUnavailable" and not st.condition("Available").true
        assert "status" not in typed.to_dict()  # the client's manifest: status is the controller's


def test_daemonset_status_is_typed():
    store = MemoryStore()
    store.create(workload("DaemonSet"))
    store.update_status("DaemonSet", "default", "web", {"desiredNumberScheduled": 2, "numberReady": 1,
                                                         "updatedNumberScheduled": 2, "observedGeneration": 1})
    st = store.typed("DaemonSet", "default", "web").status
    assert isinstance(st, DaemonSetStatus)
    assert (st.desired_number_scheduled, st.number_ready, st.updated_number_scheduled) == (2, 1, 2)


def test_status_reads_leniently():
    st = workload_status({"replicas": "3", "readyReplicas": -1, "availableReplicas": True, "observedGeneration": "x",
                          "conditions": [{"status": "True"}, "junk", {"type": "Progressing", "status": 1}]})
    assert (st.replicas, st.ready_replicas, st.available_replicas, st.observed_generation) == (0, 0, 0, None)
    assert [c.type for c in st.conditions] == ["Progressing"] and st.conditions[0].status == "Unknown"
    assert workload_status(None) == WorkloadStatus() and daemonset_status([]) == DaemonSetStatus()
    assert workload(kind="Deployment") and WorkloadStatus().observed(None)
