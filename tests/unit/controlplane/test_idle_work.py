"""An idle control-plane pass does work that follows the change, not the cluster (issue #16 item 2): the
ReplicaSet and Deployment controllers sync only what a change concerns (their work queues over the change
log), the scheduler counts the nodes' pods only when a pod waits for a node. Counted as work (pods read
through the parse cache, owners synced, node views built), never as time."""

from __future__ import annotations

import copy

import pytest

from netsim.controlplane import deployment as dep
from netsim.controlplane import objects as o
from netsim.controlplane import replicaset as rsc
from netsim.controlplane import scheduler as sch
from netsim.controlplane.state import Context, Snapshot
from netsim.controlplane.workqueue import RESYNC_SECONDS

from .conftest import Harness, deployment


def _converged(n_pods: int, deployments: int = 1) -> Harness:
    h = Harness()
    h.add_nodes(3)
    h.apply("---".join(deployment(f"web{i}", replicas=n_pods // deployments) for i in range(deployments)))
    assert h.converge(timeout=120).converged
    h.once()
    return h


def _pod_reads(h: Harness) -> int:
    """Typed pods handed out by the store's parse cache (hits and decodes) during one idle pass."""
    cache = h.store.object_cache()
    before = cache.hits + cache.decodes
    assert h.once().applied == 0
    return cache.hits + cache.decodes - before


def _full_reconcile_is_a_no_op(h: Harness) -> None:
    """What the three controllers would write if they synced everything now: nothing (the passes that
    synced only what changed left the cluster where a full pass puts it)."""
    snap = Snapshot.load(h.store)
    ctx = Context(now=h.clock.now())
    actions = (dep.reconcile_deployments(snap, ctx) + rsc.reconcile_replicasets(snap, ctx)
               + sch.reconcile_scheduler(snap, ctx))
    assert actions == [], [a.describe() for a in actions]


def test_an_idle_pass_reads_no_pod_at_ten_times_the_pods():
    small, large = _converged(12), _converged(120)
    # Before the work queues an idle pass read every pod twice or more (ReplicaSet: its pods and the
    # adoption scan; Deployment: its ReplicaSets' pods): 2N + 3 reads at 15 and 150 pods. What it reads is
    # the three Nodes (the node lifecycle controller reads them typed, once per pass), no pod.
    assert _pod_reads(small) == _pod_reads(large) == 3
    for h in (small, large):
        assert h.memory[rsc.QUEUE].synced == 0 and h.memory[dep.QUEUE].synced == 0


def test_the_scheduler_counts_the_nodes_pods_only_when_a_pod_waits(monkeypatch):
    h = _converged(30)
    calls = []
    real = sch.node_infos
    monkeypatch.setattr(sch, "node_infos", lambda snap: calls.append(1) or real(snap))
    h.once()
    assert calls == []  # today: every pass counts every pod on every node
    h.apply("""
apiVersion: v1
kind: Pod
metadata: {name: lone}
spec:
  containers: [{name: c, image: nginx}]
""")
    h.once()
    assert calls == [1] and o.node_name(h.store.get("Pod", "default", "lone"))


def test_a_pod_change_syncs_only_its_replicaset_and_deployment():
    h = _converged(30, deployments=3)
    pod = h.pods(app="web1")[0]
    h.store.update_status("Pod", "default", o.name(pod), {**pod["status"], "phase": "Failed"})
    h.once()
    assert h.memory[rsc.QUEUE].synced == 1 and h.memory[dep.QUEUE].synced == 1
    assert h.converge(timeout=30).converged
    assert len([p for p in h.pods(app="web1") if o.phase(p) == "Running"]) == 10  # replaced
    _full_reconcile_is_a_no_op(h)


def test_an_orphan_pod_is_adopted_by_the_replicaset_its_labels_match():
    h = _converged(6, deployments=2)
    rs = next(r for r in h.store.list("ReplicaSet") if o.labels(r).get("app") == "web0")
    labels = dict(rs["spec"]["selector"]["matchLabels"])
    h.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "namespace": "default",
                                                                    "labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    h.once()
    # Adopted, and as the surplus pod ranked first for deletion (not scheduled) deleted at once.
    assert h.store.get("Pod", "default", "stray") is None
    assert any(e["reason"] == "SuccessfulDelete" and "stray" in e["message"] for e in h.store.events_since(0))
    assert h.converge(timeout=30).converged
    assert len(h.pods(app="web0")) == 3
    _full_reconcile_is_a_no_op(h)


def test_min_ready_seconds_counts_pods_available_without_a_store_change():
    """Availability after minReadySeconds is a wait on the clock, not a change: the ReplicaSet and its
    Deployment stay queued until their ready pods count as available."""
    h = Harness()
    h.add_nodes(2)
    h.apply(deployment("slow", replicas=2, extra_spec="\n  minReadySeconds: 20"))
    h.converge(timeout=5)
    rs = h.store.list("ReplicaSet")[0]
    assert rs["status"]["readyReplicas"] == 2 and rs["status"]["availableReplicas"] == 0
    for _ in range(25):
        h.clock.advance(1)
        h.converge(timeout=0)  # a pass and the kubelets' step (heartbeats); no pod changes
    assert h.store.list("ReplicaSet")[0]["status"]["availableReplicas"] == 2
    d = h.store.get("Deployment", "default", "slow")
    assert d["status"]["availableReplicas"] == 2
    assert o.condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_a_rolling_update_and_scaling_end_where_a_full_sync_would():
    h = _converged(12, deployments=2)
    d = copy.deepcopy(h.store.get("Deployment", "default", "web0"))
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    h.store.update(d)
    d = copy.deepcopy(h.store.get("Deployment", "default", "web1"))
    d["spec"]["replicas"] = 2
    h.store.update(d)
    assert h.converge(timeout=60).converged
    assert {p["spec"]["containers"][0]["image"] for p in h.pods(app="web0")} == {"nginx:2"}
    assert len(h.pods(app="web1")) == 2
    _full_reconcile_is_a_no_op(h)


@pytest.mark.parametrize("controller", [rsc.QUEUE, dep.QUEUE])
def test_every_owner_is_synced_again_each_resync_period(controller):
    h = _converged(6, deployments=2)
    h.once()
    assert h.memory[controller].synced == 0
    h.clock.advance(RESYNC_SECONDS)
    h.once()
    assert h.memory[controller].synced == 2


def test_what_a_failed_sync_took_off_the_queue_is_synced_next_pass(monkeypatch):
    """A controller that raised lost the keys it had taken: every queue syncs everything next pass (a
    pass that rolls back does the same), so the pod deleted meanwhile is replaced without waiting for
    the resync period."""
    h = _converged(6)
    h.store.delete("Pod", "default", h.names(app="web0")[0])
    real = rsc.reconcile_replicaset

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(rsc, "reconcile_replicaset", broken)
    assert "replicaset" in h.once().failed
    monkeypatch.setattr(rsc, "reconcile_replicaset", real)
    h.once()
    assert h.memory[rsc.QUEUE].synced == 1 and len(h.pods(app="web0")) == 6
