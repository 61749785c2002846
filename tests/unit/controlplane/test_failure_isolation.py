"""One pod whose sandbox cannot be made never stalls the others: it is reported (event, condition), left
out of what convergence waits for, retried with the kubelet's backoff, and recovers when it can."""

from __future__ import annotations

from netsim.controlplane import objects as o
from netsim.controlplane.loop import (
    FAILURES,
    READY_TO_START,
    SANDBOX_FAILED,
    failed_pods,
    kubelet_step,
    pending_pods,
)

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: good}
spec: {containers: [{name: c}]}
"""


def test_a_failing_sandbox_is_reported_and_the_other_pods_go_on(h):
    h.add_nodes(1)
    h.apply(PODS)
    h.once()  # scheduled
    real = h.kubelet.create_sandbox
    broken = {"default/bad"}

    def create(pod):
        if o.key(pod) in broken:
            raise OSError(36, "File name too long")
        return real(pod)

    h.kubelet.create_sandbox = create
    kubelet_step(h.store, h.kubelet, h.clock)  # no exception: the step goes on past the bad pod
    good, bad = h.get("Pod", "good"), h.get("Pod", "bad")
    assert o.is_ready(good) and good["status"]["podIP"]
    assert not bad["status"].get("podIP") and bad["status"][FAILURES] == 1
    cond = o.condition(bad, READY_TO_START)
    assert cond["status"] == "False" and cond["reason"] == SANDBOX_FAILED and "File name too long" in cond["message"]
    assert "default/bad" in h.kubelet.deleted  # whatever the attempt made is undone
    events = [e for e in h.store.events_since(0) if e["reason"] == SANDBOX_FAILED]
    assert len(events) == 1 and events[0]["object"] == "Pod default/bad"
    # Settled, not pending: convergence (and every later `apply`) does not wait for it.
    assert pending_pods(h.store) == []
    assert "File name too long" in failed_pods(h.store)["default/bad"]

    # Backoff: no new attempt within 10 s; the next one after; then 20 s.
    assert kubelet_step(h.store, h.kubelet, h.clock) == 0
    h.clock.advance(10)
    kubelet_step(h.store, h.kubelet, h.clock)
    assert h.get("Pod", "bad")["status"][FAILURES] == 2
    h.clock.advance(10)
    assert kubelet_step(h.store, h.kubelet, h.clock) == 0

    # Once it can be made, it is, and the failure marks go.
    broken.clear()
    h.clock.advance(10)
    kubelet_step(h.store, h.kubelet, h.clock)
    bad = h.get("Pod", "bad")
    assert o.is_ready(bad) and FAILURES not in bad["status"]
    assert o.condition(bad, READY_TO_START)["status"] == "True"
    assert failed_pods(h.store) == {}


def test_a_pod_whose_state_cannot_be_read_does_not_stop_the_step(h):
    h.add_nodes(1)
    h.apply(PODS)
    h.once()

    def state(pod):
        if o.name(pod) == "bad":
            raise RuntimeError("probe exploded")
        return None

    h.kubelet.rule = state
    kubelet_step(h.store, h.kubelet, h.clock)
    assert o.is_ready(h.get("Pod", "good"))
    assert any(e["reason"] == "FailedSync" and "probe exploded" in e["message"] for e in h.store.events_since(0))


def test_a_controller_that_raises_does_not_stop_the_others(h, monkeypatch):
    from netsim.controlplane import loop
    h.add_nodes(1)
    h.apply(PODS)
    real = loop._controllers

    def controllers():
        def broken(snap, ctx):
            raise RuntimeError("controller bug")
        return [("broken", broken)] + real()

    monkeypatch.setattr(loop, "_controllers", controllers)
    res = h.once()
    assert res.failed == {"broken": "RuntimeError: controller bug"}
    assert all(o.node_name(p) for p in h.pods())  # the scheduler still ran
    assert any(e["reason"] == "ReconcileFailed" for e in h.store.events_since(0))


def test_a_write_the_store_refuses_is_reported_and_the_rest_applied(h):
    from netsim.controlplane.state import Action, apply_actions
    from netsim.model.limits import MAX_OBJECT_BYTES
    huge = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge", "namespace": "default"},
            "spec": {"containers": [{"name": "c"}], "volumes": [{"x": "y" * MAX_OBJECT_BYTES}]}}
    small = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "small", "namespace": "default"},
             "spec": {"containers": [{"name": "c"}]}}
    n, _ = apply_actions(h.store, [Action("create", huge), Action("create", small)], h.clock.now())
    assert n == 1 and h.get("Pod", "small") is not None and h.get("Pod", "huge") is None
    failed = [e for e in h.store.events_since(0) if e["reason"] == "FailedCreate"]
    assert failed and "etcdserver: request is too large" in failed[0]["message"]
