"""EndpointSlices (named ports, readiness, terminating, headless), node failure eviction, the timeline."""

from __future__ import annotations

import re

from netsim.controlplane import objects as o
from netsim.controlplane.events import list_events
from netsim.controlplane.loop import kubelet_step
from netsim.model.endpointslice import SERVICE_NAME_LABEL, parse_endpointslice
from netsim.model.errors import Source

from .conftest import deployment

SVC = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  PUBLISH
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: metrics, port: 9090, targetPort: metrics}
"""

POD_WITH_METRICS = """
apiVersion: v1
kind: Pod
metadata: {name: special, labels: {app: web}}
spec:
  containers:
  - name: c
    image: nginx
    ports: [{name: http, containerPort: 8081}, {name: metrics, containerPort: 9100}]
"""


def slices(h, svc="web"):
    return [s for s in h.store.list("EndpointSlice") if o.labels(s).get(SERVICE_NAME_LABEL) == svc]


def test_slices_resolve_named_ports_per_pod(h):
    h.add_nodes(2)
    h.apply(deployment(replicas=2) + "---" + SVC.replace("PUBLISH", "") + "---" + POD_WITH_METRICS)
    assert h.converge().converged
    ss = slices(h)
    assert len(ss) == 2  # pods of the Deployment have no "metrics" port: a separate port set
    for s in ss:
        assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", o.name(s))
        assert o.labels(s)["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
        parse_endpointslice(s, Source("<store>"))  # valid by the model's own rules
    by_ports = {tuple((p["name"], p["port"]) for p in s["ports"]): s for s in ss}
    assert set(by_ports) == {(("http", 8080),), (("http", 8081), ("metrics", 9100))}
    special = by_ports[(("http", 8081), ("metrics", 9100))]["endpoints"]
    assert [e["targetRef"]["name"] for e in special] == ["special"]
    deploy_eps = by_ports[(("http", 8080),)]["endpoints"]
    assert len(deploy_eps) == 2
    pods = {o.name(p): p for p in h.pods()}
    for e in deploy_eps:
        pod = pods[e["targetRef"]["name"]]
        assert e["addresses"] == [pod["status"]["podIP"]] and e["nodeName"] == o.node_name(pod)
        assert e["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert e["targetRef"]["uid"] == o.uid(pod)
    assert any(ev.reason == "EndpointsUpdated" for ev in list_events(h.store))


def test_not_ready_and_publish_not_ready(h):
    h.add_nodes(1)
    h.kubelet.rule = lambda pod: __import__("netsim.controlplane.loop", fromlist=["PodState"]).PodState(ready=False)
    h.apply(deployment(replicas=1) + "---" + SVC.replace("PUBLISH", ""))
    h.converge(timeout=2)
    [s] = slices(h)
    assert s["endpoints"][0]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    h.apply(SVC.replace("PUBLISH", "publishNotReadyAddresses: true"))
    h.converge(timeout=2)
    [s] = slices(h)
    assert s["endpoints"][0]["conditions"] == {"ready": True, "serving": False, "terminating": False}


def test_terminating_pod_endpoint_then_removed(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=1) + "---" + SVC.replace("PUBLISH", ""))
    h.converge()
    [pod] = h.pods()
    pod["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    h.store.update(pod)
    h.once()
    eps = {e["targetRef"]["name"]: e for s in slices(h) for e in s["endpoints"]}
    assert eps[o.name(pod)]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert h.converge().converged
    eps = {e["targetRef"]["name"] for s in slices(h) for e in s["endpoints"]}
    assert o.name(pod) not in eps and len(eps) == 1  # the replacement


def test_headless_service_and_hostnames(h):
    h.add_nodes(1)
    h.apply("""
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}}
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
    spec: {containers: [{name: c, image: db}]}
""")
    assert h.converge().converged
    [s] = slices(h, "db")
    assert sorted(e["hostname"] for e in s["endpoints"]) == ["db-0", "db-1"] and s["ports"] == []


def test_service_without_selector_gets_no_managed_slice_and_deleted_service_cleans_up(h):
    h.add_nodes(1)
    h.apply("""
apiVersion: v1
kind: Service
metadata: {name: manual}
spec: {ports: [{port: 80}]}
""")
    h.converge()
    assert slices(h, "manual") == []
    h.apply(deployment(replicas=1) + "---" + SVC.replace("PUBLISH", ""))
    h.converge()
    assert slices(h)
    h.store.delete("Service", "default", "web")
    h.converge()
    assert slices(h) == []


def test_node_failure_evicts_and_replaces_pods(h):
    h.add_nodes(2)
    h.apply(deployment(replicas=4) + "---" + SVC.replace("PUBLISH", ""))
    assert h.converge().converged
    on_n2 = {o.name(p) for p in h.pods() if o.node_name(p) == "node-2"}
    assert len(on_n2) == 2
    h.kubelet.failed_nodes.add("node-2")
    h.clock.advance(11)  # past the 10 s grace in the test config
    h.once()
    n2 = h.get("Node", "node-2", ns=None)
    assert o.condition(n2, "Ready")["status"] == "Unknown"
    assert {(t["key"], t["effect"]) for t in n2["spec"]["taints"]} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    assert {o.name(p) for p in h.pods() if o.is_terminating(p)} == set()  # eviction waits 5 s
    h.clock.advance(6)
    res = h.converge(timeout=5)
    assert res.converged
    active = [p for p in h.pods() if o.is_active(p)]
    assert len(active) == 4 and all(o.node_name(p) == "node-1" for p in active)
    assert {o.name(p) for p in h.pods() if o.is_terminating(p)} == on_n2  # node gone: stuck terminating
    eps = {e["targetRef"]["name"]: e["conditions"] for s in slices(h) for e in s["endpoints"]}
    assert all(eps[n]["terminating"] and not eps[n]["ready"] for n in on_n2)
    reasons = [e.reason for e in list_events(h.store)]
    assert "NodeNotReady" in reasons and "TaintManagerEviction" in reasons
    # the node comes back: its kubelet finishes the deletions, taints go away
    h.kubelet.failed_nodes.clear()
    assert h.converge().converged
    assert len(h.pods()) == 4
    assert not h.get("Node", "node-2", ns=None)["spec"].get("taints")


def test_pods_of_a_not_ready_node_turn_not_ready_and_leave_the_endpoints_before_eviction(h):
    """MarkPodsNotReady: the moment the node is NotReady, not when its pods are evicted."""
    h.add_nodes(2)
    h.apply(deployment(replicas=4) + "---" + SVC.replace("PUBLISH", ""))
    assert h.converge().converged
    on_n2 = {o.name(p) for p in h.pods() if o.node_name(p) == "node-2"}
    h.kubelet.failed_nodes.add("node-2")
    h.clock.advance(11)
    h.converge(timeout=2)
    pods = {o.name(p): p for p in h.pods()}
    assert all(not o.is_ready(pods[n]) and not o.is_terminating(pods[n]) for n in on_n2)
    assert all(o.condition(pods[n], "ContainersReady")["status"] == "True" for n in on_n2)  # only Ready, as upstream
    eps = {e["targetRef"]["name"]: e["conditions"] for s in slices(h) for e in s["endpoints"]}
    assert all(not eps[n]["ready"] and not eps[n]["serving"] for n in on_n2)
    assert all(eps[n]["ready"] for n in eps if n not in on_n2)
    marked = [e for e in list_events(h.store) if e.reason == "NodeNotReady" and e.object.startswith("Pod ")]
    assert sorted(e.object for e in marked) == sorted(f"Pod default/{n}" for n in on_n2)
    assert all(e.type == "Warning" and e.message == "Node is not ready" for e in marked)
    h.kubelet.failed_nodes.clear()  # back before the eviction: its kubelet reports the pods Ready again
    assert h.converge().converged
    assert all(o.is_ready(p) for p in h.pods())


def test_timeline_tells_the_story(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=1))
    h.converge()
    [pod] = h.pods()
    story = [(e.actor, e.reason) for e in list_events(h.store)]
    assert story[:4] == [("controller/deployment", "ScalingReplicaSet"), ("controller/replicaset", "SuccessfulCreate"),
                         ("scheduler", "Scheduled"), ("kubelet/node-1", "SandboxCreated")]
    sched = list_events(h.store, object=o.ref(pod))
    assert sched[0].message == f"Successfully assigned default/{o.name(pod)} to node-1"
    assert sched[1].duration_ms is not None


def test_unschedulable_pod_reports_reason_once(h):
    h.add_nodes(2)
    h.apply(deployment(replicas=1).replace("containers:", "nodeSelector: {disk: ssd}\n      containers:"))
    res = h.converge(timeout=2)
    assert not res.converged and len(res.pending) == 1
    [pod] = h.pods()
    cond = o.condition(pod, "PodScheduled")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"] == "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    assert [e.reason for e in list_events(h.store)].count("FailedScheduling") == 1


def test_kubelet_step_skips_failed_nodes(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=1))
    h.once()
    h.kubelet.failed_nodes.add("node-1")
    assert kubelet_step(h.store, h.kubelet, h.clock) == 0
    assert h.kubelet.created == []


def test_run_forever_reacts_to_writes_from_elsewhere(tmp_path):
    import threading

    from netsim.controlplane.fake_kubelet import FakeKubelet
    from netsim.controlplane.loop import RealClock, run_forever
    from netsim.controlplane.nodes import node_object
    from netsim.model.cluster import default_cluster
    from netsim.model.loader import parse_documents
    from netsim.store import SQLiteStore

    path = str(tmp_path / "store.db")
    daemon_store, client = SQLiteStore(path), SQLiteStore(path)
    spec = default_cluster("t")
    clock = RealClock()
    for i in range(len(spec.nodes)):
        client.create(node_object(spec, i, clock.now()))
    stop = threading.Event()
    t = threading.Thread(target=run_forever, args=(daemon_store, FakeKubelet(), clock, stop.is_set),
                         kwargs={"resync": 0.05}, daemon=True)
    t.start()
    try:
        client.apply(parse_documents(deployment(replicas=3)))
        for _ in range(200):
            pods = client.list("Pod")
            if len(pods) == 3 and all(o.is_ready(p) for p in pods):
                break
            stop.wait(0.02)
        assert len(pods) == 3 and all(o.is_ready(p) for p in pods)
    finally:
        stop.set()
        t.join(5)


def test_planned_actions_is_a_dry_run(h):
    from netsim.controlplane.loop import is_converged, planned_actions

    h.add_nodes(1)
    h.apply(deployment(replicas=2))
    rv = h.store.current_rv()
    plan = planned_actions(h.store, h.clock)
    assert any(p.startswith("deployment: create ReplicaSet default/web-") for p in plan)
    assert any(p.startswith("replicaset: create Pod default/web-") for p in plan)
    assert h.store.current_rv() == rv and h.store.events_since(0) == []
    assert is_converged(h.store, h.clock)[0] is False
    h.converge()
    assert is_converged(h.store, h.clock) == (True, [])
