"""--endpointslice-updates-batch-period (spec.timing endpointSliceUpdatesBatchPeriod): a pod change reaches its
Service's slices only a batch period later (upstream queue.AddAfter on pod events), together with the other pod
changes of that period; a change of the Service itself is synced at once. 0, the default, is immediate."""

from __future__ import annotations

from netsim.controlplane import objects as o
from netsim.controlplane.loop import kubelet_step
from netsim.model.endpointslice import SERVICE_NAME_LABEL

from .conftest import deployment

SVC = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"""


def ready(h) -> dict[str, bool]:
    return {e["targetRef"]["name"]: e["conditions"]["ready"] for s in h.store.list("EndpointSlice")
            if o.labels(s).get(SERVICE_NAME_LABEL) == "web" for e in s.get("endpoints") or []}


def start(h, batch: float) -> list[str]:
    h.config.node_monitor_grace_seconds = 1e9
    h.config.endpointslice_batch_period = batch
    h.add_nodes(2)
    h.apply(deployment("web", replicas=3) + "---" + SVC)
    assert h.converge().converged
    names = h.names(app="web")
    assert ready(h) == dict.fromkeys(names, True)
    return names


def step(h, seconds: float) -> None:
    h.clock.advance(seconds)
    kubelet_step(h.store, h.kubelet, h.clock)
    h.once()


def test_pod_changes_reach_the_slices_one_batch_period_later_and_together(h):
    names = start(h, 2.0)
    h.kubelet.not_ready.add(f"default/{names[0]}")
    step(h, 0.1)
    assert o.is_ready(h.get("Pod", names[0])) is False
    assert ready(h)[names[0]] is True  # not yet: batched
    h.kubelet.not_ready.add(f"default/{names[1]}")
    step(h, 1.0)
    assert ready(h)[names[1]] is True
    step(h, 1.0)  # 2.1 s after the first change: both changes at once
    assert ready(h) == {names[0]: False, names[1]: False, names[2]: True}


def test_a_service_change_is_synced_at_once_and_no_batching_by_default(h):
    names = start(h, 5.0)
    h.kubelet.not_ready.add(f"default/{names[0]}")
    step(h, 0.1)
    assert ready(h)[names[0]] is True
    svc = h.get("Service", "web")
    svc["metadata"]["labels"] = {"tier": "front"}
    h.store.update(svc)
    h.once()
    assert ready(h)[names[0]] is False


def test_without_a_batch_period_pod_changes_are_synced_in_the_same_pass(h):
    names = start(h, 0.0)
    h.kubelet.not_ready.add(f"default/{names[0]}")
    step(h, 0.1)
    assert ready(h)[names[0]] is False
