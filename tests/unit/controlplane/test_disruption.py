"""The disruption controller's PDB status and the eviction API's use of it (pure: a MemoryStore)."""

from __future__ import annotations

import pytest

from netsim.apiserver import errors, eviction
from netsim.controlplane.disruption import reconcile_disruption
from netsim.controlplane.state import Context, Snapshot, apply_actions
from netsim.store import MemoryStore

NOW = 1_700_000_000.0


def _pod(name: str, ready: bool = True, owner: dict | None = None, labels: dict | None = None) -> dict:
    md = {"name": name, "namespace": "default", "labels": labels or {"app": "web"}}
    if owner:
        md["ownerReferences"] = [{"kind": owner["kind"], "name": owner["metadata"]["name"],
                                  "uid": owner["metadata"]["uid"], "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


# A template that parses: the controller reads the Deployment and ReplicaSet typed (their scale).
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


def _pdb(spec: dict) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


def _world(pdb_spec: dict, ready: tuple[bool, ...] = (True, True, True)) -> MemoryStore:
    s = MemoryStore()
    dep = s.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}})
    rs = s.create({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [
                       {"kind": "Deployment", "name": "web", "uid": dep["metadata"]["uid"], "controller": True}]},
                   "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}})
    for i, r in enumerate(ready):
        s.create(_pod(f"web-{i}", r, rs))
    s.create(_pdb(pdb_spec))
    return s


def _reconcile(s: MemoryStore, now: float = NOW) -> dict:
    apply_actions(s, reconcile_disruption(Snapshot.load(s), Context(now=now)), now)
    return s.get("PodDisruptionBudget", "default", "web")["status"]


@pytest.mark.parametrize(("spec", "expected", "desired", "allowed"), [
    ({"minAvailable": 2}, 3, 2, 0),             # number: out of the pods found; 2 of the 3 are healthy
    ({"minAvailable": "50%"}, 4, 2, 0),         # percentage: of the Deployment's scale (4), rounded up
    ({"maxUnavailable": 1}, 4, 3, 0),
    ({"maxUnavailable": "75%"}, 4, 1, 1),
])
def test_status_as_the_disruption_controller_computes_it(spec, expected, desired, allowed):
    st = _reconcile(_world(spec, ready=(True, True, False)))
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == \
        (expected, desired, 2, allowed)
    cond = st["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == \
        ("DisruptionAllowed", "True" if allowed else "False", "SufficientPods" if allowed else "InsufficientPods")
    assert st["observedGeneration"] == 1


def test_a_pod_without_a_controller_fails_the_count_safely():
    s = _world({"maxUnavailable": 1})
    s.create(_pod("stray"))
    st = _reconcile(s)
    assert st["disruptionsAllowed"] == 0 and st["conditions"][0]["reason"] == "SyncFailed"


def test_eviction_decrements_the_budget_then_answers_429():
    s = _world({"minAvailable": 1})
    assert _reconcile(s)["disruptionsAllowed"] == 2
    deleted = []
    for name in ("web-0", "web-1"):
        eviction.evict(s, s.get("Pod", "default", name), NOW, False, lambda n=name: deleted.append(n))
    st = s.get("PodDisruptionBudget", "default", "web")["status"]
    assert deleted == ["web-0", "web-1"] and st["disruptionsAllowed"] == 0
    assert set(st["disruptedPods"]) == {"web-0", "web-1"}
    with pytest.raises(errors.ApiError) as e:
        eviction.evict(s, s.get("Pod", "default", "web-2"), NOW, False, lambda: deleted.append("web-2"))
    status = e.value.status()
    assert (status["code"], status["reason"], status["message"]) == (
        429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.")
    assert status["details"]["causes"] == [{"reason": "DisruptionBudget",
                                            "message": "The disruption budget web needs 1 healthy pods and has 3 currently"}]
    # the controller does not count the evicted pods as healthy while they are being deleted
    st = _reconcile(s)
    assert (st["currentHealthy"], st["disruptionsAllowed"]) == (1, 0)
    assert _reconcile(s, NOW + 121)["currentHealthy"] == 3  # the record expires after two minutes


def test_eviction_without_budget_unready_and_several_budgets():
    s = _world({"minAvailable": 3}, ready=(True, True, False))
    _reconcile(s)
    gone = []
    other = s.create(_pod("other", labels={"app": "other"}))
    eviction.evict(s, other, NOW, False, lambda: gone.append("other"))  # no budget selects it
    with pytest.raises(errors.ApiError) as e:  # unready, but the budget is not met: it would still count
        eviction.evict(s, s.get("Pod", "default", "web-2"), NOW, False, lambda: gone.append("web-2"))
    assert e.value.code == 429
    pdb = s.get("PodDisruptionBudget", "default", "web")
    pdb["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    s.update(pdb)
    eviction.evict(s, s.get("Pod", "default", "web-2"), NOW, False, lambda: gone.append("web-2"))
    with pytest.raises(errors.ApiError) as e:  # the spec changed: the status is behind its generation
        eviction.evict(s, s.get("Pod", "default", "web-0"), NOW, False, lambda: gone.append("web-0"))
    assert e.value.code == 429 and "still being processed" in e.value.status()["details"]["causes"][0]["message"]
    s.create({**_pdb({"minAvailable": 1}), "metadata": {"name": "second", "namespace": "default"}})
    with pytest.raises(errors.ApiError) as e:
        eviction.evict(s, s.get("Pod", "default", "web-0"), NOW, False, lambda: gone.append("web-0"))
    assert e.value.code == 500 and "more than one PodDisruptionBudget" in e.value.message
    assert gone == ["other", "web-2"]


def test_the_pdb_pass_reads_typed_pods_parsed_once_per_version():
    """The disruption controller reads the typed PDB and typed Pods (the store's parse cache): the three pods
    and the PDB parsed on the first pass, the PDB once more at the version its status write made, then
    nothing at unchanged versions."""
    from netsim.controlplane.state import SnapshotCache

    s = _world({"minAvailable": 2})
    cache = SnapshotCache()
    before = s.object_cache().decodes
    apply_actions(s, reconcile_disruption(cache.load(s), Context(now=NOW)), NOW)
    assert s.object_cache().decodes - before == 4
    before = s.object_cache().decodes
    assert reconcile_disruption(cache.load(s), Context(now=NOW)) == []
    assert s.object_cache().decodes - before == 1
    before = s.object_cache().decodes
    assert reconcile_disruption(cache.load(s), Context(now=NOW)) == []
    assert s.object_cache().decodes == before


def test_a_percentage_counts_a_replicationcontrollers_scale():
    """getExpectedScale's ReplicationController finder: the typed RC (netsim.model.replicationcontroller)
    gives the scale a percentage is taken of (netsim read none before, and failed the count safe)."""
    s = MemoryStore()
    rc = s.create({"apiVersion": "v1", "kind": "ReplicationController",
                   "metadata": {"name": "web", "namespace": "default"},
                   "spec": {"replicas": 4, "selector": {"app": "web"}, "template": TEMPLATE}})
    for i in range(3):
        s.create(_pod(f"web-{i}", True, rc))
    s.create(_pdb({"minAvailable": "50%"}))
    st = _reconcile(s)
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == (4, 2, 3, 1)
    assert st["conditions"][0]["reason"] == "SufficientPods"
