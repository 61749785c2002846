"""Controllers read typed objects from their snapshot through the store's parse cache: the scheduler's
node view is built from the one Node class, each Node version decoded once across passes."""

from __future__ import annotations

from netsim.controlplane.scheduler import NodeInfo, node_infos
from netsim.controlplane.state import Snapshot, SnapshotCache
from netsim.model.cluster import Taint
from netsim.model.node import Node
from netsim.store import MemoryStore


def node(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"zone": name}},
            "spec": {"podCIDR": "10.244.0.0/24", **spec},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}


def test_scheduler_nodes_are_decoded_once_per_version_across_passes():
    store = MemoryStore()
    store.create(node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]))
    store.create(node("b", unschedulable=True))
    cache = SnapshotCache()
    for _ in range(3):
        infos = node_infos(cache.load(store))
    assert store.object_cache().decodes == 2
    assert infos["a"].taints == (Taint("k", "NoSchedule", "v"),) and infos["a"].labels["zone"] == "a"
    assert infos["b"].unschedulable and not infos["a"].unschedulable
    cur = store.get("Node", None, "b")
    cur["spec"]["unschedulable"] = False
    store.update(cur)
    assert not node_infos(cache.load(store))["b"].unschedulable
    assert store.object_cache().decodes == 3


def test_a_snapshot_without_a_store_decodes_as_the_store_would():
    snap = Snapshot({"Node": [node("a")]})
    (typed,) = snap.typed("Node")
    assert isinstance(typed, Node) and typed.internal_ip == "172.18.0.2"
    assert NodeInfo.from_node(node("a")) == NodeInfo.from_node(typed)


def _rs_and_pods(store: MemoryStore, n: int) -> dict:
    store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"replicas": n, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    rs = store.get("ReplicaSet", "default", "web")
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"],
           "controller": True}
    for i in range(n):
        store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": f"web-{i}", "namespace": "default", "labels": {"app": "web"},
                                   "ownerReferences": [ref]},
                      "spec": {"nodeName": "a", "containers": [{"name": "c", "image": "busybox"}]},
                      "status": {"phase": "Running"}})
    return rs


def test_replicaset_controller_reads_pods_typed_and_parses_each_version_once():
    """The ReplicaSet controller reads itself and its pods typed: the first pass parses the ReplicaSet and each
    Pod once, a pass at the same versions parses nothing, and a changed pod is parsed again (alone)."""
    from netsim.controlplane.replicaset import reconcile_replicasets
    from netsim.controlplane.state import Context, apply_actions

    store = MemoryStore()
    _rs_and_pods(store, 3)
    cache = SnapshotCache()
    decodes = store.object_cache().decodes
    actions = reconcile_replicasets(cache.load(store), Context(now=1000.0))
    assert store.object_cache().decodes - decodes == 4  # the ReplicaSet and its three pods, once each
    assert [a.verb for a in actions] == ["status"] and actions[0].obj["status"]["replicas"] == 3
    apply_actions(store, actions, 1000.0)
    decodes = store.object_cache().decodes
    assert reconcile_replicasets(cache.load(store), Context(now=1001.0)) == []
    assert store.object_cache().decodes == decodes + 1  # the ReplicaSet's new version (its status)
    decodes = store.object_cache().decodes
    assert reconcile_replicasets(cache.load(store), Context(now=1001.5)) == []
    assert store.object_cache().decodes == decodes  # nothing changed: nothing parsed
    store.update_status("Pod", "default", "web-1", {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
    (a,) = reconcile_replicasets(cache.load(store), Context(now=1002.0))
    assert a.obj["status"]["readyReplicas"] == 1 and a.obj["status"]["availableReplicas"] == 1
    assert store.object_cache().decodes == decodes + 1


def test_replicaset_scale_down_deletes_in_active_pods_order_from_typed_pods():
    """controller.ActivePods' order on typed Pods: unscheduled, then not ready, then newer go first."""
    from netsim.controlplane.replicaset import reconcile_replicasets
    from netsim.controlplane.state import Context

    store = MemoryStore()
    rs = _rs_and_pods(store, 3)
    for i in (0, 2):
        store.update_status("Pod", "default", f"web-{i}", {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}]})
    rs["spec"]["replicas"] = 1
    store.update(rs)
    actions = reconcile_replicasets(Snapshot.load(store), Context(now=1000.0))
    assert [(a.verb, a.obj["metadata"]["name"]) for a in actions if a.verb == "terminate"] == [
        ("terminate", "web-1"), ("terminate", "web-2")]


def test_node_lifecycle_reads_pods_typed_once_per_version():
    """Marking a down node's pods not ready and the taint manager's evictions read typed Pods: parsed once,
    not again on a pass at the same versions; tolerations come from the typed pod spec."""
    from netsim.controlplane.nodes import NOT_READY, evictions, mark_pods_not_ready
    from netsim.controlplane.state import Context

    store = MemoryStore()
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"},
                  "spec": {"taints": [{"key": NOT_READY, "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}]},
                  "status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    for name, tolerations in (("p0", []), ("p1", [{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}])):
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                      "spec": {"nodeName": "a", "tolerations": tolerations,
                               "containers": [{"name": "c", "image": "busybox"}]},
                      "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    cache = SnapshotCache()
    now = 1_900_000_000.0
    before = store.object_cache().decodes
    for _ in range(2):
        snap = cache.load(store)
        ctx = Context(now=now)
        assert sorted(a.obj["metadata"]["name"] for a in mark_pods_not_ready(snap, ctx)) == ["p0", "p1"]
        assert [(a.verb, a.obj["metadata"]["name"]) for a in evictions(snap, ctx)] == [("terminate", "p0")]
        assert store.object_cache().decodes - before == 3  # the node and the two pods, on the first pass only


def test_the_hpa_controller_parses_each_hpa_version_once():
    """The HPA controller takes its HorizontalPodAutoscaler from the parse cache, not a parse per sync."""
    from netsim.controlplane.hpa import reconcile_hpas
    from netsim.controlplane.state import Context

    store = MemoryStore()
    store.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                  "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                           "minReplicas": 1, "maxReplicas": 3}})
    cache = SnapshotCache()
    before = store.object_cache().decodes
    for i in range(3):  # sync periods apart; the target is missing, so each sync reports FailedGetScale
        ctx = Context(now=1000.0 + 60 * i, memory={})
        assert [a.verb for a in reconcile_hpas(cache.load(store), ctx)] in (["status"], ["event"], [])
    assert store.object_cache().decodes - before == 1


WORKLOADS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: agent:1}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: db:1}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: work}
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "0 0 1 1 *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
"""


def test_workload_controllers_and_gc_read_typed_and_a_quiet_pass_parses_nothing(h, monkeypatch):
    """The DaemonSet, StatefulSet, Job and CronJob controllers and the garbage collector read their objects
    typed from the store's parse cache: after the workloads converge each is held there at its current
    version (what a controller read), and a pass over unchanged objects parses none of them again."""
    from netsim.model import batch, workloads

    parsed: list[str] = []
    for module, name in ((workloads, "parse_daemonset"), (workloads, "parse_statefulset"), (batch, "parse_job"),
                         (batch, "parse_cronjob")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda doc, source, real=real: parsed.append(doc["kind"]) or real(doc, source))
    h.add_nodes(2)
    h.apply(WORKLOADS)
    assert h.converge().converged
    cache = h.store.object_cache()
    for kind, name in (("DaemonSet", "agent"), ("StatefulSet", "db"), ("Job", "work"), ("CronJob", "tick")):
        cur = h.get(kind, name)
        assert cache.lookup((kind, "default", name), int(cur["metadata"]["resourceVersion"])) is not None, kind
    assert {"DaemonSet", "StatefulSet", "Job", "CronJob"} <= set(parsed)
    assert h.get("Job", "work")["status"]["active"] == 1 and h.get("StatefulSet", "db")["status"]["readyReplicas"] == 2
    parsed.clear()
    decodes = cache.decodes
    for _ in range(2):
        h.once()
    assert parsed == [] and cache.decodes == decodes


def test_garbage_collector_reads_dependents_typed_and_still_collects_one_that_does_not_parse():
    """The collector reads a dependent's controller reference and node from its typed object (parse cache:
    a second pass at the same versions parses nothing); an orphan that does not parse is collected from its
    stored metadata."""
    from netsim.controlplane.nodes import reconcile_garbage
    from netsim.controlplane.state import Context

    store = MemoryStore()
    store.create(node("a"))
    _rs_and_pods(store, 2)
    gone = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "old", "uid": "gone", "controller": True}
    store.create({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "bad", "namespace": "default", "ownerReferences": [gone]},
                  "spec": {"containers": "not a list"}})
    cache = SnapshotCache()
    before = store.object_cache().decodes
    for now in (1000.0, 1001.0):
        actions = reconcile_garbage(cache.load(store), Context(now=now))
        assert [(a.verb, a.obj["metadata"]["name"]) for a in actions] == [("terminate", "bad")]
    oc = store.object_cache()
    assert oc.decodes - before == 5  # the node, the ReplicaSet and three pods, on the first pass only
    pod = store.get("Pod", "default", "web-0")
    assert oc.lookup(("Pod", "default", "web-0"), int(pod["metadata"]["resourceVersion"])) is not None


def test_a_pod_that_does_not_parse_is_still_bound():
    """The scheduler reads pending pods typed; one written around validation (an env name the kubelet
    cannot pass to execve) is read leniently and bound all the same, so its kubelet reports why it cannot
    run while the rest goes on. Its nodeSelector still counts."""
    from netsim.controlplane.scheduler import reconcile_scheduler
    from netsim.controlplane.state import Context

    store = MemoryStore()
    store.create(node("a"))
    store.create(node("b"))
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad-env", "namespace": "default"},
                  "spec": {"nodeSelector": {"zone": "b"},
                           "containers": [{"name": "c", "env": [{"name": "A=B", "value": "x"}]}]}})
    (bind,) = reconcile_scheduler(Snapshot.load(store), Context(now=1000.0))
    assert bind.verb == "update" and bind.obj["spec"]["nodeName"] == "b"
