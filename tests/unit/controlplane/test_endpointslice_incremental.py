"""The EndpointSlice controller works on what changed: after its first pass it reconciles only the Services
whose Service, pods or slices changed (upstream queues Service keys from its informers' events), and the
result is the same as reconciling everything."""

from __future__ import annotations

import copy

from netsim.controlplane import objects as o
from netsim.controlplane.endpointslice import MEMORY_KEY, reconcile_endpointslices
from netsim.controlplane.state import Context, Snapshot
from netsim.model.endpointslice import SERVICE_NAME_LABEL

from .conftest import deployment


def svc(name: str, app: str) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {app}}}
  ports: [{{port: 80, targetPort: http}}]
"""


def selectorless(i: int) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: plain-{i}}}
spec:
  ports: [{{port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: plain-{i}-1, labels: {{kubernetes.io/service-name: plain-{i}}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints: [{{addresses: [10.1.{i // 250}.{i % 250 + 1}]}}]
"""


def endpoint_names(h, service: str) -> list[str]:
    return sorted(e["targetRef"]["name"] for s in h.store.list("EndpointSlice")
                  if o.labels(s).get(SERVICE_NAME_LABEL) == service for e in s.get("endpoints") or [])


def full_reconcile_is_a_no_op(h) -> None:
    """What reconciling every Service from scratch would write now: nothing (the incremental passes
    left the slices exactly where a full pass puts them)."""
    actions = reconcile_endpointslices(Snapshot.load(h.store), Context(now=h.clock.now()))
    assert actions == [], [a.describe() for a in actions]


def test_a_quiet_pass_reconciles_no_service_and_a_pod_change_only_its_services(h):
    h.add_nodes(2)
    h.apply(deployment("web", replicas=2) + "---" + deployment("api", replicas=1) + "---" + svc("web", "web")
            + "---" + svc("api", "api") + "---" + "---".join(selectorless(i) for i in range(30)))
    assert h.converge().converged
    mem = h.memory[MEMORY_KEY]
    h.once()
    assert mem.reconciled == 0  # nothing changed: no Service looked at (today: all 33 every pass)
    h.kubelet.not_ready.add(f"default/{h.names(app='api')[0]}")
    h.converge(timeout=2)
    # The pod's readiness changed: its Service was reconciled, the others not.
    assert [e["conditions"]["ready"] for s in h.store.list("EndpointSlice")
            if o.labels(s).get(SERVICE_NAME_LABEL) == "api" for e in s["endpoints"]] == [False]
    h.once()
    assert mem.reconciled == 0
    pod = h.pods(app="web")[0]
    # podIP and podIPs[0] move together (the API server validates they agree; the controller reads podIPs)
    h.store.update_status("Pod", "default", o.name(pod), {**pod["status"], "podIP": "10.244.9.9",
                                                          "podIPs": [{"ip": "10.244.9.9"}]})
    h.once()
    assert mem.reconciled == 1  # only web
    assert "10.244.9.9" in [e["addresses"][0] for s in h.store.list("EndpointSlice")
                            if o.labels(s).get(SERVICE_NAME_LABEL) == "web" for e in s["endpoints"]]
    full_reconcile_is_a_no_op(h)


def test_a_pod_relabelled_leaves_its_old_service_and_joins_the_new_one(h):
    h.add_nodes(1)
    h.apply(deployment("web", replicas=2) + "---" + svc("web", "web") + "---" + svc("other", "other"))
    assert h.converge().converged
    h.once()
    moved = h.names(app="web")[0]
    pod = copy.deepcopy(h.get("Pod", moved))
    pod["metadata"]["labels"] = {"app": "other"}  # no longer owned by its ReplicaSet's selector
    h.store.update(pod)
    h.once()
    assert moved not in endpoint_names(h, "web")
    assert endpoint_names(h, "other") == [moved]
    full_reconcile_is_a_no_op(h)


def test_deleted_pod_selector_change_and_deleted_service(h):
    h.add_nodes(1)
    h.apply(deployment("web", replicas=2) + "---" + deployment("api", replicas=1) + "---" + svc("web", "web"))
    assert h.converge().converged
    h.once()
    gone = h.names(app="web")[0]
    h.store.delete("Pod", "default", gone)
    h.once()
    assert gone not in endpoint_names(h, "web")
    s = copy.deepcopy(h.get("Service", "web"))
    s["spec"]["selector"] = {"app": "api"}
    h.store.update(s)
    assert h.converge().converged
    assert endpoint_names(h, "web") == h.names(app="api")
    full_reconcile_is_a_no_op(h)


def test_a_zone_label_on_a_node_reaches_the_endpoints(h):
    h.add_nodes(1)
    h.apply(deployment("web", replicas=1) + "---" + svc("web", "web"))
    assert h.converge().converged
    h.once()
    node = copy.deepcopy(h.store.list("Node")[0])
    node["metadata"].setdefault("labels", {})["topology.kubernetes.io/zone"] = "z1"
    h.store.update(node)
    h.once()
    eps = [e for s in h.store.list("EndpointSlice") if o.labels(s).get(SERVICE_NAME_LABEL) == "web"
           for e in s["endpoints"]]
    assert [e.get("zone") for e in eps] == ["z1"]
    full_reconcile_is_a_no_op(h)


def test_compacted_history_falls_back_to_a_full_pass(h):
    h.add_nodes(1)
    h.apply(deployment("web", replicas=1) + "---" + svc("web", "web") + "---" + selectorless(1))
    assert h.converge().converged
    h.once()
    for _ in range(3):
        h.store.update(h.store.list("Node")[0])  # writes to compact past
    h.store.compact(h.store.current_rv())
    h.once()
    assert h.memory[MEMORY_KEY].reconciled == 2  # every Service, as after a relist


def test_slice_lookups_use_the_index_not_a_scan_per_service():
    """A Service's slices and pods come from the snapshot's label index: reconciling 300 Services touches
    each slice a bounded number of times (a scan per Service touched 300 x 300)."""
    slices = [{"kind": "EndpointSlice", "metadata": {"name": f"s{i}-x", "namespace": "default",
                                                      "labels": {SERVICE_NAME_LABEL: f"s{i}"}}}
              for i in range(300)]
    services = [{"kind": "Service", "metadata": {"name": f"s{i}", "namespace": "default", "uid": str(i)},
                 "spec": {"ports": [{"port": 80}]}} for i in range(300)]
    touched = 0

    class Counting(dict):
        def get(self, k, default=None):
            nonlocal touched
            touched += 1
            return super().get(k, default)
    for s in slices:
        s["metadata"] = Counting(s["metadata"])
    actions = reconcile_endpointslices(Snapshot({"Service": services, "EndpointSlice": slices}),
                                       Context(now=0.0))
    assert actions == []
    assert touched < 10 * len(slices)
