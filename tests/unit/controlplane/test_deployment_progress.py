"""progressDeadlineSeconds (kubernetes pkg/controller/deployment/progress.go): a rollout that makes no progress
for that long turns Progressing False with reason ProgressDeadlineExceeded, which `rollout status` reports;
progress (a pod becoming ready) moves the deadline and brings the condition back."""

from __future__ import annotations

import pytest

from netsim.controlplane import objects as o
from netsim.controlplane.loop import PodState
from netsim.controlplane.rollout import rollout_status
from netsim.store import StoreError

from .conftest import deployment


def progressing(h) -> dict:
    return o.condition(h.get("Deployment", "web"), "Progressing")


def test_a_stuck_rollout_exceeds_its_progress_deadline_and_recovers_when_it_progresses(h):
    h.config.node_monitor_grace_seconds = 1e9
    h.add_nodes(2)
    h.apply(deployment(replicas=2, extra_spec="\n  progressDeadlineSeconds: 10\n  minReadySeconds: 0"))
    assert h.converge().converged
    assert progressing(h)["reason"] == "NewReplicaSetAvailable"
    h.kubelet.rule = lambda pod: PodState(ready=False) if "nginx:2" in str(pod["spec"]) else None
    d = h.get("Deployment", "web")
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    h.store.update(d)
    h.converge(timeout=3)
    assert progressing(h)["reason"] == "ReplicaSetUpdated"
    for _ in range(5):  # 5 s without progress: still within the deadline
        h.clock.advance(1)
        h.once()
    assert progressing(h)["status"] == "True"
    for _ in range(7):
        h.clock.advance(1)
        h.once()
    cond = progressing(h)
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"].endswith("has timed out progressing.")
    with pytest.raises(StoreError, match="exceeded its progress deadline"):
        rollout_status(h.get("Deployment", "web"))
    h.kubelet.rule = None  # the new pods get ready: progress again
    assert h.converge().converged
    assert progressing(h)["reason"] == "NewReplicaSetAvailable"
    assert rollout_status(h.get("Deployment", "web"))[1]
