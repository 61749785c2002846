"""The kubelet's probe workers as a state machine (prober/worker.go): thresholds, initial results, gates."""

from __future__ import annotations

import time

from netsim.node.liveness import KILLED_EXIT_CODE, PlayedContainers
from netsim.node.prober import LIVENESS, READINESS, STARTUP, ProbeManager, ProbeSpec, ProbeWorker


def test_spec_defaults_are_the_api_servers():
    assert ProbeSpec.of({}) == ProbeSpec(0.0, 10.0, 1.0, 1, 3)
    assert ProbeSpec.of({"periodSeconds": 1, "failureThreshold": 2, "initialDelaySeconds": 5,
                         "timeoutSeconds": 0}) == ProbeSpec(5.0, 1.0, 1.0, 1, 2)


def test_initial_results_and_thresholds():
    r = ProbeWorker(READINESS, ProbeSpec(success_threshold=2, failure_threshold=2, period=1))
    r.reset("c1")
    assert r.result is False  # not ready before a probe passed
    assert not r.record(True, 0) and r.result is False  # one success of two
    assert r.record(True, 1) and r.result is True
    assert not r.record(False, 2) and r.result is True  # one failure of two
    assert r.record(False, 3) and r.result is False
    live = ProbeWorker(LIVENESS, ProbeSpec(failure_threshold=3))
    live.reset("c1")
    assert live.result is True
    for t in range(2):
        live.record(False, t)
    assert live.result is True and not live.on_hold
    live.record(False, 3)
    assert live.result is False and live.on_hold  # killed: no more probes of this container
    assert not live.due(100, 0, True)
    live.reset("c2")  # a new container: probing resumes from the initial result
    assert live.result is True and not live.on_hold


def test_gates_initial_delay_period_and_startup():
    s = ProbeWorker(STARTUP, ProbeSpec(initial_delay=5, period=1))
    s.reset("c")
    assert s.result is None
    assert not s.due(4, 0, started=False) and s.due(5, 0, started=False)
    s.record(True, 5)
    assert not s.due(5.5, 0, started=False) and s.due(6, 0, started=False)
    assert not s.due(6, 0, started=True)  # startup probes stop once started
    r = ProbeWorker(READINESS, ProbeSpec())
    r.reset("c")
    assert not r.due(10, 0, started=False) and r.due(10, 0, started=True)  # others wait for the start


def _settle(m: ProbeManager, container, instance, results, rounds=20):
    out = None
    for _ in range(rounds):
        out = m.evaluate("ns/p", container, instance, 0.0, time.time(), lambda k, p, t: results[k])
        time.sleep(0.01)
    return out


def test_manager_startup_gates_liveness_and_readiness_then_a_liveness_failure_kills():
    c = {"name": "app", "startupProbe": {"periodSeconds": 0.01, "failureThreshold": 1},
         "livenessProbe": {"periodSeconds": 0.01, "failureThreshold": 2},
         "readinessProbe": {"periodSeconds": 0.01}}
    m = ProbeManager(workers=2)
    try:
        res = _settle(m, c, "i1", {STARTUP: (True, ""), LIVENESS: (True, ""), READINESS: (True, "")})
        assert res.started and res.ready and res.kill is None
        res = _settle(m, c, "i1", {STARTUP: (True, ""), LIVENESS: (False, "boom"), READINESS: (True, "")})
        assert res.kill == LIVENESS
        res = _settle(m, c, "i2", {STARTUP: (False, "no"), LIVENESS: (True, ""), READINESS: (True, "")})
        assert not res.started and not res.ready and res.kill == STARTUP
        assert m.evaluate("ns/p", c, None, 0.0, time.time(), lambda *a: (True, "")).ready is False
    finally:
        m.shutdown()


def test_played_containers_restart_with_the_back_off():
    p = PlayedContainers()
    assert p.instance("ns/p", "app", 1.0) == (0, 1.0)
    p.kill("ns/p", "app", now=10.0)
    assert p.instance("ns/p", "app", 1.0)[0] is None and p.down("ns/p") == {"app"}
    assert p.peek("ns/p", "app").last_terminated["exitCode"] == KILLED_EXIT_CODE
    assert p.restart_wait("ns/p", "app", now=10.0) == 0  # the first restart is at once
    p.restart("ns/p", "app", now=10.0)
    assert p.instance("ns/p", "app", 1.0) == (1, 10.0) and p.peek("ns/p", "app").restarts == 1
    p.kill("ns/p", "app", now=11.0)
    assert p.restart_wait("ns/p", "app", now=12.0) == 9.0  # then 10 s after the exit
    p.forget("ns/p")
    assert p.peek("ns/p", "app") is None


def test_spam_filter_lets_a_burst_through_then_one_per_refill():
    from netsim.node.prober import SpamFilter
    f = SpamFilter(burst=3, qps=0.1)
    p, p2, other = ("ns/p", "kubelet"), ("ns/p", "other-source"), ("ns/q", "kubelet")
    assert [f.allow(p, 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert not f.allow(p, 5.0) and f.allow(p, 10.5) and not f.allow(p, 11.0)
    assert f.allow(other, 11.0)
    assert [f.allow(p2, 11.0) for _ in range(4)] == [True, True, True, False]
    f.forget("ns/p")  # every source's bucket of the pod, no other pod's
    assert f.allow(p, 11.0) and f.allow(p2, 11.0)
    assert [f.allow(other, 11.0) for _ in range(3)] == [True, True, False]
