"""Stopping a deleted pod's containers: preStop first, SIGTERM, the grace period, SIGKILL; played
containers stop accepting at SIGTERM or drain for the annotation's seconds."""

from __future__ import annotations

import threading
import time

from netsim.node.termination import Terminator, grace_of


def pod(containers, grace=None, annotations=None, deletion_grace=None):
    md = {"name": "p", "namespace": "default", "annotations": annotations or {}}
    if deletion_grace is not None:
        md["deletionGracePeriodSeconds"] = deletion_grace
    spec = {"containers": containers}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": md, "spec": spec}


class World:
    def __init__(self, ignores_term=False, hook_ok=True, hook_seconds=0.0):
        self.alive = {"app"}
        self.ignores_term, self.hook_ok, self.hook_seconds = ignores_term, hook_ok, hook_seconds
        self.log: list[tuple] = []
        self.hook_done = threading.Event()
        self.t = Terminator(run_hook=self.run_hook, signal_term=self.term, signal_kill=self.kill,
                            running=lambda p, n: n in self.alive, stop_played=lambda p: self.log.append(("stop",)),
                            is_played=lambda p, c: "command" not in c,
                            event=lambda p, n, r, m: self.log.append(("event", r, m)))

    def run_hook(self, p, c, hook, grace):
        self.log.append(("hook", c["name"]))
        time.sleep(self.hook_seconds)
        self.hook_done.set()
        return self.hook_ok, "" if self.hook_ok else "exit 1"

    def term(self, p, n):
        self.log.append(("TERM", n))
        if not self.ignores_term:
            self.alive.discard(n)

    def kill(self, p, n):
        self.log.append(("KILL", n))
        self.alive.discard(n)


def step_when_hook_done(w, p, now):
    """Step until the hook's future has finished (its thread posts the result after run_hook returns: on a
    loaded machine, later than any fixed sleep), at most 5 s; returns the last step's answer."""
    w.hook_done.wait(5)
    deadline = time.monotonic() + 5
    while not (done := w.t.step("default/p", p, now)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return done


def test_grace_comes_from_the_deletion_then_the_spec_then_30s():
    assert grace_of(pod([], deletion_grace=5, grace=10)) == 5.0
    assert grace_of(pod([], grace=10)) == 10.0 and grace_of(pod([])) == 30.0


def test_prestop_runs_before_sigterm_and_a_process_that_exits_is_done():
    w = World(hook_seconds=0.05)
    p = pod([{"name": "app", "command": ["sleep", "9"], "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}])
    assert w.t.step("default/p", p, 100.0) is False  # the hook runs
    assert step_when_hook_done(w, p, 100.1) is True
    assert [e for e in w.log if e[0] != "event"] == [("hook", "app"), ("TERM", "app")]
    assert ("event", "Killing", "Stopping container app") in w.log


def test_a_process_ignoring_sigterm_is_killed_when_the_grace_period_runs_out():
    w = World(ignores_term=True)
    p = pod([{"name": "app", "command": ["sh"]}], deletion_grace=3)
    assert w.t.step("default/p", p, 0.0) is False
    assert w.t.step("default/p", p, 2.9) is False and ("KILL", "app") not in w.log
    assert w.t.step("default/p", p, 3.0) is True and w.log[-1] == ("KILL", "app")


def test_a_failing_hook_is_reported_and_termination_goes_on():
    w = World(hook_ok=False)
    p = pod([{"name": "app", "command": ["x"], "lifecycle": {"preStop": {"exec": {"command": ["false"]}}}}])
    w.t.step("default/p", p, 0.0)
    assert step_when_hook_done(w, p, 0.1) is True
    assert ("event", "FailedPreStopHook", "PreStopHook failed: exit 1") in w.log


def test_a_played_container_stops_accepting_at_sigterm_or_drains_for_the_annotation():
    w = World()
    assert w.t.step("default/p", pod([{"name": "web"}]), 0.0) is True and ("stop",) in w.log
    w = World()
    p = pod([{"name": "web"}], annotations={"netsim.io/drain-seconds": "2"})
    assert w.t.step("default/p", p, 0.0) is False and ("stop",) not in w.log
    assert w.t.step("default/p", p, 1.9) is False
    assert w.t.step("default/p", p, 2.0) is True and ("stop",) in w.log
    w = World()  # the drain never outlasts the grace period
    p = pod([{"name": "web"}], annotations={"netsim.io/drain-seconds": "60"}, deletion_grace=1)
    w.t.step("default/p", p, 0.0)
    assert w.t.step("default/p", p, 1.0) is True
