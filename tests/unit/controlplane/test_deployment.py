"""ReplicaSet and Deployment: scaling, rolling update bounds, Recreate, revisions, undo, cleanup."""

from __future__ import annotations

import re

import pytest

from netsim.controlplane import objects as o
from netsim.controlplane.deployment import HASH_LABEL, REVISION, compute_hash, safe_encode
from netsim.controlplane.rollout import rollout_history, rollout_status, undo
from netsim.store import StoreError

from .conftest import Harness, deployment


def rs_of(h, name="web"):
    d = h.get("Deployment", name)
    return sorted((rs for rs in h.store.list("ReplicaSet") if o.owned_by(rs, d)),
                  key=lambda rs: int(rs["metadata"]["annotations"][REVISION]))


def set_image(h, image, name="web"):
    d = h.get("Deployment", name)
    d["spec"]["template"]["spec"]["containers"][0]["image"] = image
    h.store.update(d)


def scale(h, n, kind="Deployment", name="web"):
    d = h.get(kind, name)
    d["spec"]["replicas"] = n
    h.store.update(d)


def test_hash_is_stable_and_uses_safe_alphabet():
    t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}
    assert compute_hash(t) == compute_hash(dict(t))
    assert compute_hash(t) != compute_hash(t, 1)
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{6,10}", compute_hash(t))
    assert safe_encode("0123") == "4567"  # ord('0') = 48, 48 % 27 = 21, ALPHANUMS[21] = '4'



RS = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: front}
spec:
  replicas: 3
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec: {containers: [{name: c, image: nginx}]}
"""


def test_replicaset_pod_names_and_deterministic_rng(h):
    h.add_nodes(2)
    h.apply(RS)
    assert h.converge().converged
    names = h.names()
    assert len(names) == 3 and all(re.fullmatch(r"front-[bcdfghjklmnpqrstvwxz2456789]{5}", n) for n in names)
    rs = h.get("ReplicaSet", "front")
    assert rs["status"]["readyReplicas"] == 3 and rs["status"]["availableReplicas"] == 3
    assert all(o.owned_by(p, rs) for p in h.pods())
    # spread over both nodes
    assert {o.node_name(p) for p in h.pods()} == {"node-1", "node-2"}

    h2 = Harness()
    h2.add_nodes(2)
    h2.apply(RS)
    h2.converge()
    assert h2.names() == names  # same seed, same names


def test_replicaset_replaces_deleted_pod(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=2))
    h.converge()
    victim = h.names()[0]
    h.store.delete("Pod", "default", victim)
    assert h.converge().converged
    assert len(h.names()) == 2 and victim not in h.names()


def test_deployment_scales_3_10_2(h):
    h.add_nodes(3)
    h.apply(deployment(replicas=3))
    assert h.converge().converged
    [rs] = rs_of(h)
    assert rs["metadata"]["name"] == f"web-{rs['spec']['template']['metadata']['labels'][HASH_LABEL]}"
    assert len(h.pods()) == 3
    scale(h, 10)
    assert h.converge().converged
    assert len(h.pods()) == 10
    per_node = [sum(1 for p in h.pods() if o.node_name(p) == n) for n in ("node-1", "node-2", "node-3")]
    assert sorted(per_node) == [3, 3, 4]
    scale(h, 2)
    assert h.converge().converged
    assert len(h.pods()) == 2
    d = h.get("Deployment", "web")
    assert d["status"]["readyReplicas"] == 2 and d["status"]["updatedReplicas"] == 2
    assert len(rs_of(h)) == 1  # scaling is not a rollout
    assert d["metadata"]["annotations"][REVISION] == "1"


def _ready_counts(h):
    pods = [p for p in h.pods() if o.is_active(p)]
    return sum(1 for p in pods if o.is_ready(p)), len([p for p in h.pods()])


@pytest.mark.parametrize("surge,unavailable,replicas", [(1, 0, 4), (0, 1, 4), ("25%", "25%", 8), (2, 2, 5)])
def test_rolling_update_respects_surge_and_unavailable(h, surge, unavailable, replicas):
    h.add_nodes(3)
    strat = f"{{type: RollingUpdate, rollingUpdate: {{maxSurge: {surge!r}, maxUnavailable: {unavailable!r}}}}}"
    strat = strat.replace("'", "")
    h.apply(deployment(replicas=replicas, strategy=strat))
    assert h.converge().converged
    max_surge = surge if isinstance(surge, int) else -(-replicas * int(surge[:-1]) // 100)
    max_unavail = unavailable if isinstance(unavailable, int) else replicas * int(unavailable[:-1]) // 100
    seen = []

    def check(store):
        ready, total = _ready_counts(h)
        seen.append((ready, total))
        assert ready >= replicas - max_unavail, seen
        assert total <= replicas + max_surge, seen

    set_image(h, "nginx:2")
    res = h.converge(on_pass=check)
    assert res.converged
    images = {p["spec"]["containers"][0]["image"] for p in h.pods()}
    assert images == {"nginx:2"} and len(h.pods()) == replicas
    assert len(seen) > 2
    assert any(total > replicas for _, total in seen) == (max_surge > 0)
    msg, done = rollout_status(h.get("Deployment", "web"))
    assert done and msg == 'deployment "web" successfully rolled out'


def test_rolling_update_waits_for_readiness(h):
    h.add_nodes(2)
    h.apply(deployment(replicas=2, strategy="{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}"))
    h.converge()
    old = set(h.names())
    h.kubelet.rule = lambda pod: __import__("netsim.controlplane.loop", fromlist=["PodState"]).PodState(
        ready=pod["spec"]["containers"][0]["image"] != "nginx:2")
    set_image(h, "nginx:2")
    res = h.converge(timeout=5)
    assert not res.converged
    assert old <= set(h.names()) and len(h.names()) == 3  # one surge pod, never ready: old ones stay
    msg, done = rollout_status(h.get("Deployment", "web"))
    assert not done
    assert msg == 'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated...'
    h.kubelet.rule = None
    assert h.converge().converged
    assert not (old & set(h.names()))


def test_recreate_deletes_all_before_creating(h):
    h.add_nodes(2)
    h.apply(deployment(replicas=3, strategy="{type: Recreate}"))
    h.converge()
    mixed = []

    def check(store):
        images = {p["spec"]["containers"][0]["image"] for p in h.pods()}
        mixed.append(len(images) > 1)

    set_image(h, "nginx:2")
    assert h.converge(on_pass=check).converged
    assert not any(mixed)
    assert {p["spec"]["containers"][0]["image"] for p in h.pods()} == {"nginx:2"}


def test_revisions_history_and_undo_like_kubectl(h):
    h.add_nodes(2)
    h.apply(deployment(replicas=2, image="nginx:1"))
    h.converge()
    set_image(h, "nginx:2")
    h.converge()
    set_image(h, "nginx:3")
    h.converge()
    assert [r for r, _ in rollout_history(h.store, "default", "web")] == [1, 2, 3]
    assert undo(h.store, "default", "web") == "deployment.apps/web rolled back"
    h.converge()
    d = h.get("Deployment", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    assert HASH_LABEL not in d["spec"]["template"]["metadata"]["labels"]
    # kubectl: the revision brought back is renumbered to the next revision; 2 disappears from history
    assert [r for r, _ in rollout_history(h.store, "default", "web")] == [1, 3, 4]
    assert d["metadata"]["annotations"][REVISION] == "4"
    assert {p["spec"]["containers"][0]["image"] for p in h.pods()} == {"nginx:2"}
    assert len(rs_of(h)) == 3  # no new ReplicaSet: the old one was reused
    assert undo(h.store, "default", "web", to_revision=1) == "deployment.apps/web rolled back"
    h.converge()
    assert {p["spec"]["containers"][0]["image"] for p in h.pods()} == {"nginx:1"}
    assert [r for r, _ in rollout_history(h.store, "default", "web")] == [3, 4, 5]
    with pytest.raises(StoreError, match="unable to find specified revision 9 in history"):
        undo(h.store, "default", "web", to_revision=9)
    assert undo(h.store, "default", "web", to_revision=5) == \
        "deployment.apps/web skipped rollback (current template already matches revision 5)"


def test_revision_history_limit_deletes_oldest(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=1, extra_spec="\n  revisionHistoryLimit: 1"))
    h.converge()
    for i in range(2, 5):
        set_image(h, f"nginx:{i}")
        h.converge()
    revs = [int(rs["metadata"]["annotations"][REVISION]) for rs in rs_of(h)]
    assert revs == [3, 4]


def test_paused_deployment_does_not_roll_out(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=2))
    h.converge()
    d = h.get("Deployment", "web")
    d["spec"]["paused"] = True
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:9"
    h.store.update(d)
    h.converge()
    assert len(rs_of(h)) == 1
    assert {p["spec"]["containers"][0]["image"] for p in h.pods()} == {"nginx:1"}
    assert o.condition(h.get("Deployment", "web"), "Progressing")["reason"] == "DeploymentPaused"
    with pytest.raises(StoreError, match="cannot rollback a paused deployment"):
        undo(h.store, "default", "web")
    d = h.get("Deployment", "web")
    d["spec"]["paused"] = False
    h.store.update(d)
    h.converge()
    assert {p["spec"]["containers"][0]["image"] for p in h.pods()} == {"nginx:9"}


def test_deleting_deployment_cascades(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=2))
    h.converge()
    h.store.delete("Deployment", "default", "web")
    assert h.converge().converged
    assert h.store.list("ReplicaSet") == [] and h.pods() == []


def test_hash_collision_bumps_collision_count(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=1))
    d = h.get("Deployment", "web")
    squatter_hash = compute_hash(d["spec"]["template"])
    h.store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": f"web-{squatter_hash}", "namespace": "default"},
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"other": "x"}},
                             "template": {"metadata": {"labels": {"other": "x"}},
                                          "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    assert h.converge().converged
    d = h.get("Deployment", "web")
    assert d["status"]["collisionCount"] == 1
    [rs] = rs_of(h)
    assert o.name(rs) == f"web-{compute_hash(d['spec']['template'], 1)}"
    assert len(h.pods()) == 1
