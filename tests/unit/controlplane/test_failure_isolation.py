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
