"""Container states as the kubelet reports them: a command that exits is Terminated (Error / Completed) or,
when its restartPolicy restarts it, restarted with the kubelet's back-off (Waiting CrashLoopBackOff
between restarts, lastState, restartCount, `logs --previous`); a command that cannot start is Waiting
RunContainerError with an event Failed. Other pods are not held up."""

from __future__ import annotations

import time

import pytest

from netsim.api import Cluster
from netsim.controlplane.events import list_events
from tests.conftest import run_netsim, unique_name

pytestmark = pytest.mark.root


def _status(c: Cluster, name: str) -> dict:
    return (c.store.get("Pod", "default", name) or {}).get("status") or {}


def _container(c: Cluster, name: str) -> dict:
    cs = _status(c, name).get("containerStatuses") or [{}]
    return cs[0]


def _wait(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (v := predicate()):
            return v
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_exits_start_errors_and_crash_loop_back_off():
    c = Cluster.up(None, name=unique_name("cs"))
    try:
        t0 = time.monotonic()
        c.apply("""
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  # the kubelet expands $$$$ to $$ (its escape), which sh reads as its PID
  containers: [{name: c, image: x, command: [sh, -c, "echo run-$$$$; exit 3"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: nostart}
spec:
  containers: [{name: c, image: x, command: [/nonexistent/netsim-no-such-binary]}]
---
apiVersion: v1
kind: Pod
metadata: {name: done}
spec:
  restartPolicy: OnFailure
  containers: [{name: c, image: x, command: ["true"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: failed}
spec:
  restartPolicy: Never
  containers: [{name: c, image: x, command: [sh, -c, "exit 7"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: fine}
spec:
  containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]
""", wait=False)
        # The crashing pod: restarted at once, then held in CrashLoopBackOff with its last exit kept.
        cs = _wait(lambda: (x := _container(c, "crash")).get("restartCount") == 1
                   and "waiting" in (x.get("state") or {}) and x)
        assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert "back-off 10s restarting failed container=c pod=crash_default(" in cs["state"]["waiting"]["message"]
        assert cs["lastState"]["terminated"]["exitCode"] == 3
        assert cs["lastState"]["terminated"]["reason"] == "Error"
        held = time.monotonic()
        assert _container(c, "crash")["restartCount"] == 1
        prev = run_netsim("logs", "crash", "--previous", "--cluster", c.name).stdout
        assert prev.startswith("run-"), prev
        assert run_netsim("logs", "crash", "--cluster", c.name).stdout not in ("", prev)
        # The other pods were not held up by it.
        assert _wait(lambda: any(x["type"] == "Ready" and x["status"] == "True"
                                 for x in _status(c, "fine").get("conditions") or []))
        # A kubelet that waited out the crash's back-offs (10 s, then 20 s) before starting the other pods
        # would need 30 s; the rest of the bound is room for a loaded machine.
        assert time.monotonic() - t0 < 25
        assert _wait(lambda: _status(c, "done").get("phase") == "Succeeded")
        assert _container(c, "done")["state"]["terminated"]["reason"] == "Completed"
        assert _wait(lambda: _status(c, "failed").get("phase") == "Failed")
        term = _container(c, "failed")["state"]["terminated"]
        assert (term["reason"], term["exitCode"]) == ("Error", 7)
        # A command that cannot start.
        ns = _wait(lambda: (x := _container(c, "nostart")).get("state", {}).get("waiting") and x)
        assert ns["state"]["waiting"]["reason"] == "RunContainerError"
        assert "no-such-binary" in ns["state"]["waiting"]["message"]
        assert ns["lastState"]["terminated"]["reason"] == "StartError"
        reasons = {(e.object, e.reason) for e in list_events(c.store)}
        assert ("Pod default/nostart", "Failed") in reasons
        assert ("Pod default/crash", "BackOff") in reasons
        # After the 10 s back-off the crashing container runs again: restartCount 2, then 20 s back-off.
        cs = _wait(lambda: (x := _container(c, "crash")).get("restartCount") == 2
                   and "waiting" in (x.get("state") or {}) and x, timeout=15)
        assert time.monotonic() - held > 8
        assert "back-off 20s" in cs["state"]["waiting"]["message"]
    finally:
        c.down()
