"""The API verbs over an in-memory store: the same validation as `apply`, optimistic concurrency, patches,
deletes, watches from a resourceVersion and after compaction."""

from __future__ import annotations

import json

import pytest

from netsim.apiserver import errors, watch
from netsim.apiserver.handlers import Handlers, Target
from netsim.controlplane.admission import admit
from netsim.daemon import bootstrap_objects, normalise
from netsim.model.cluster import default_cluster
from netsim.store import MemoryStore


@pytest.fixture
def h():
    spec = default_cluster("u")
    store = MemoryStore()
    with store.transaction() as tx:
        tx.apply(admit(normalise(bootstrap_objects(spec), "<bootstrap>"), spec, [], []))
    yield Handlers(store, spec)
    store.close()


def target(h: Handlers, group: str, version: str, plural: str, ns: str | None = "default", name: str | None = None,
           sub: str | None = None) -> Target:
    return Target(h.catalog().lookup(group, version, plural), ns, name, sub)


def deployment(name: str = "web", replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}


def code(fn) -> tuple[int, str, dict]:
    with pytest.raises(errors.ApiError) as e:
        fn()
    return e.value.code, e.value.reason, e.value.status()


def test_create_get_update_conflict_and_delete(h):
    t = target(h, "apps", "v1", "deployments")
    made = h.create(t, deployment(), {})
    assert made["metadata"]["uid"] and made["kind"] == "Deployment"
    assert code(lambda: h.create(t, deployment(), {}))[:2] == (409, "AlreadyExists")
    named = target(h, "apps", "v1", "deployments", name="web")
    stale = dict(made, metadata=dict(made["metadata"]))
    body = h.get(named)
    body["spec"]["replicas"] = 2
    updated = h.update(named, body, {})
    assert updated["spec"]["replicas"] == 2 and updated["metadata"]["generation"] == 2
    c, reason, st = code(lambda: h.update(named, stale, {}))
    assert (c, reason) == (409, "Conflict") and "the object has been modified" in st["message"]
    h.delete(named, None, {})
    assert code(lambda: h.get(named))[:2] == (404, "NotFound")


def test_invalid_object_is_422_with_the_field_apply_names(h):
    t = target(h, "", "v1", "services")
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 70000}]}}
    c, reason, st = code(lambda: h.create(t, bad, {}))
    assert (c, reason) == (422, "Invalid")
    assert st["details"]["causes"][0]["field"].startswith("spec.ports[0]")
    # the namespace must exist, as in the API server (netsim apply would create it)
    other = target(h, "", "v1", "configmaps", ns="nope")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert code(lambda: h.create(other, cm, {}))[2]["message"] == 'namespaces "nope" not found'


def test_services_are_admitted_like_apply_and_dry_run_stores_nothing(h):
    t = target(h, "", "v1", "services")
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80}]}}
    dry = h.create(t, svc, {"dryRun": "All"})
    assert dry["spec"]["clusterIP"] and h.store.get("Service", "default", "s") is None
    made = h.create(t, svc, {})
    assert made["spec"]["clusterIP"].startswith("10.") and 30000 <= made["spec"]["ports"][0]["nodePort"] <= 32767


def test_patch_types_scale_and_status(h):
    h.create(target(h, "apps", "v1", "deployments"), deployment(), {})
    named = target(h, "apps", "v1", "deployments", name="web")
    out = h.patch(named, {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i:2"}]}}}},
                  "application/strategic-merge-patch+json", {})
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "i:2"
    out = h.patch(named, [{"op": "replace", "path": "/spec/replicas", "value": 3}], "application/json-patch+json", {})
    assert out["spec"]["replicas"] == 3
    out = h.patch(named, {"metadata": {"labels": {"x": "y"}}}, "application/merge-patch+json", {})
    assert out["metadata"]["labels"] == {"x": "y"}
    scale = target(h, "apps", "v1", "deployments", name="web", sub="scale")
    s = h.patch(scale, {"spec": {"replicas": 5}}, "application/merge-patch+json", {})
    assert s["kind"] == "Scale" and s["spec"]["replicas"] == 5 and h.get(named)["spec"]["replicas"] == 5
    assert code(lambda: h.patch(scale, {"spec": {"replicas": -1}}, "application/merge-patch+json", {}))[0] == 422
    status = target(h, "apps", "v1", "deployments", name="web", sub="status")
    body = h.get(named)
    body["status"] = {"replicas": 9}
    body["spec"]["replicas"] = 1  # ignored by /status
    out = h.update(status, body, {})
    assert out["status"] == {"replicas": 9} and out["spec"]["replicas"] == 5
    # and the main resource ignores status
    body = h.get(named)
    body["status"] = {"replicas": 1}
    assert h.update(named, body, {})["status"] == {"replicas": 9}
    assert code(lambda: h.patch(target(h, "apps", "v1", "deployments", name="nope"), {}, "application/merge-patch+json",
                                {}))[0] == 404


def test_list_selectors_and_pages(h):
    t = target(h, "", "v1", "configmaps")
    for i in range(5):
        h.create(t, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "labels": {"n": str(i % 2)}}},
                 {})
    items, rv, cont, remaining = h.list(t, {"labelSelector": "n=1"})
    assert [o["metadata"]["name"] for o in items] == ["c1", "c3"] and cont is None and rv == h.store.current_rv()
    items, _, cont, remaining = h.list(t, {"limit": "2"})
    assert [o["metadata"]["name"] for o in items] == ["c0", "c1"] and remaining == 3
    items, _, cont, _ = h.list(t, {"limit": "2", "continue": cont})
    assert [o["metadata"]["name"] for o in items] == ["c2", "c3"]
    items, _, _, _ = h.list(t, {"fieldSelector": "metadata.name=c4"})
    assert [o["metadata"]["name"] for o in items] == ["c4"]
    assert code(lambda: h.list(t, {"fieldSelector": "data.x=1"}))[0] == 400


def test_watch_from_a_resource_version_and_after_compaction(h):
    t = target(h, "", "v1", "configmaps")
    start = h.store.current_rv()
    h.create(t, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}, {})
    h.create(target(h, "", "v1", "secrets"), {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}, {})
    h.patch(target(h, "", "v1", "configmaps", name="a"), {"data": {"k": "v"}}, "application/merge-patch+json", {})
    stream = watch.events(h, t, {"resourceVersion": str(start), "timeoutSeconds": "1"}, lambda: False,
                          lambda typ, obj: {"type": typ, "object": obj})
    evs = list(stream)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "a"), ("MODIFIED", "a")]
    h.store.compact(h.store.current_rv())
    evs = list(watch.events(h, t, {"resourceVersion": str(start), "timeoutSeconds": "1"}, lambda: False,
                            lambda typ, obj: {"type": typ, "object": obj}))
    assert evs[0]["type"] == "ERROR" and evs[0]["object"]["code"] == 410
    assert evs[0]["object"]["reason"] == "Expired" and "too old resource version" in evs[0]["object"]["message"]


def test_delete_pod_goes_through_graceful_termination_and_orphan_keeps_dependents(h):
    pods = target(h, "", "v1", "pods")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]}}
    h.create(pods, pod, {})
    out = h.delete(target(h, "", "v1", "pods", name="p"), None, {})
    assert out["metadata"]["deletionTimestamp"] and h.store.get("Pod", "default", "p") is not None
    h.delete(target(h, "", "v1", "pods", name="p"), {"gracePeriodSeconds": 0}, {})
    assert h.store.get("Pod", "default", "p") is None
    owner = h.create(target(h, "apps", "v1", "deployments"), deployment(), {})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dep", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner["metadata"]["uid"]}]}}
    h.create(target(h, "", "v1", "configmaps"), cm, {})
    h.delete(target(h, "apps", "v1", "deployments", name="web"), None, {"propagationPolicy": "Orphan"})
    assert "ownerReferences" not in h.store.get("ConfigMap", "default", "dep")["metadata"]


def test_resource_version_match_and_dry_run_versions(h):
    t = target(h, "", "v1", "configmaps")
    now = str(h.store.current_rv())
    assert h.list(t, {"resourceVersion": now, "resourceVersionMatch": "Exact"})[1] == int(now)
    assert code(lambda: h.list(t, {"resourceVersionMatch": "Sometime", "resourceVersion": now}))[0] == 400
    made = h.create(t, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}, {"dryRun": "All"})
    assert "resourceVersion" not in made["metadata"]
    h.create(t, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}, {})
    cur = h.store.get("ConfigMap", "default", "d")
    out = h.patch(target(h, "", "v1", "configmaps", name="d"), {"data": {"a": "b"}}, "application/merge-patch+json",
                  {"dryRun": "All"})
    assert out["data"] == {"a": "b"} and out["metadata"]["resourceVersion"] == cur["metadata"]["resourceVersion"]
    assert h.store.get("ConfigMap", "default", "d") == cur


def test_server_side_apply_owns_fields_and_conflicts(h):
    t = target(h, "apps", "v1", "deployments", name="web")
    apply = "application/apply-patch+yaml"
    cfg = deployment(replicas=2)
    cfg["metadata"]["labels"] = {"team": "a"}
    made = h.patch(t, cfg, apply, {"fieldManager": "alice"})
    (entry,) = made["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("alice", "Apply")
    assert entry["fieldsV1"]["f:spec"]["f:replicas"] == {}
    containers = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert set(containers['k:{"name":"c"}']) == {".", "f:name", "f:image"}
    # another manager changes replicas (as kubectl scale does): it owns them now
    h.patch(target(h, "apps", "v1", "deployments", name="web", sub="scale"), {"spec": {"replicas": 3}},
            "application/merge-patch+json", {"__manager": "kubectl"})
    again = deployment(replicas=2)
    c, reason, st = code(lambda: h.patch(t, again, apply, {"fieldManager": "alice"}))
    assert (c, reason) == (409, "Conflict")
    (cause,) = st["details"]["causes"]
    assert (cause["reason"], cause["field"]) == ("FieldManagerConflict", ".spec.replicas")
    assert cause["message"].startswith('conflict with "kubectl" with subresource "scale" using apps/v1 at ')
    assert st["message"].startswith('Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale"')
    assert st["message"].endswith(": .spec.replicas")
    # force takes the field over; the label alice no longer applies goes (nobody else owns it)
    out = h.patch(t, again, apply, {"fieldManager": "alice", "force": "true"})
    assert out["spec"]["replicas"] == 2 and "team" not in (out["metadata"].get("labels") or {})
    owners = {e["manager"]: e for e in out["metadata"]["managedFields"]}
    assert "f:replicas" not in json.dumps(owners.get("kubectl", {}).get("fieldsV1", {}))
    # the same value is no conflict
    h.patch(target(h, "apps", "v1", "deployments", name="web", sub="scale"), {"spec": {"replicas": 2}},
            "application/merge-patch+json", {"__manager": "kubectl"})
    assert h.patch(t, again, apply, {"fieldManager": "alice"})["spec"]["replicas"] == 2
    assert code(lambda: h.patch(t, again, apply, {}))[0] == 400


def test_node_updates_only_where_kubectl_node_verbs_write(h):
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.244.0.0/24"}}
    with h.store.transaction() as tx:
        tx.create(node)
    t = target(h, "", "v1", "nodes", ns=None, name="node-1")
    merge = "application/merge-patch+json"
    out = h.patch(t, {"spec": {"unschedulable": True, "taints": [{"key": "a", "value": "b", "effect": "NoSchedule"}]},
                      "metadata": {"labels": {"zone": "z1"}}}, merge, {})
    assert out["spec"]["unschedulable"] is True and out["metadata"]["labels"] == {"zone": "z1"}
    c, _, st = code(lambda: h.patch(t, {"spec": {"taints": [{"key": "a", "effect": "Never"}]}}, merge, {}))
    assert c == 422 and st["details"]["causes"][0]["field"] == "spec.taints[0].effect"
    c, _, st = code(lambda: h.patch(t, {"spec": {"podCIDR": "10.244.9.0/24"}}, merge, {}))
    assert c == 422 and st["details"]["causes"][0]["field"] == "spec.podCIDR"
    assert code(lambda: h.create(target(h, "", "v1", "nodes", ns=None), dict(node, metadata={"name": "n9"}), {}))[0] \
        == 422  # nodes come from the Cluster spec, as netsim apply says


def test_list_at_a_past_resource_version(h):
    t = target(h, "", "v1", "configmaps")
    cm = lambda name, v: {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": v}}  # noqa: E731
    for name in ("a", "b", "c"):
        h.create(t, cm(name, "1"), {})
    then = h.store.current_rv()
    first = h.list(t, {"limit": "2"})  # page one of two, at `then`
    h.patch(target(h, "", "v1", "configmaps", name="a"), {"data": {"v": "2"}}, "application/merge-patch+json", {})
    h.delete(target(h, "", "v1", "configmaps", name="b"), None, {})
    h.create(t, cm("d", "1"), {})
    h.delete(target(h, "", "v1", "configmaps", name="c"), None, {})
    items, rv, _, _ = h.list(t, {"resourceVersion": str(then), "resourceVersionMatch": "Exact"})
    assert rv == then and [(i["metadata"]["name"], i["data"]["v"]) for i in items] == [("a", "1"), ("b", "1"),
                                                                                        ("c", "1")]
    assert {i["metadata"]["resourceVersion"] for i in items} <= {str(v) for v in range(then + 1)}
    # the second page is read from the present (not rebuilt at the first page's version)
    page2, rv2, _, _ = h.list(t, {"limit": "2", "continue": first[2]})
    assert rv2 == then and [i["metadata"]["name"] for i in page2] == ["d"]
    now = [i["metadata"]["name"] for i in h.list(t, {"resourceVersion": str(then), "resourceVersionMatch":
                                                     "NotOlderThan"})[0]]
    assert now == ["a", "d"]  # not older than: the present
    h.store.compact(h.store.current_rv())
    assert code(lambda: h.list(t, {"resourceVersion": str(then), "resourceVersionMatch": "Exact"}))[:2] == \
        (410, "Expired")
