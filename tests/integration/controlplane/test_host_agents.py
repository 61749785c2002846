"""The cluster split into processes (issue #17 item 2): node agents per host (`netsim agent`), the control
plane elected among candidates (`netsim controlplane`, the daemon), handing over when the leader dies or
stalls; `down` kills every process of the cluster."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from netsim import daemonproc, lifecycle
from netsim.api import Cluster
from netsim.controlplane import objects as o
from netsim.controlplane.nodes import node_ready
from netsim.leader import LEASE_NAME, LEASE_NAMESPACE, LeaderConfig
from tests.conftest import run_netsim

pytestmark = pytest.mark.root

LEASE = 3.0  # spec.timing.leaderLeaseDuration of these clusters
CFG = LeaderConfig.for_lease(LEASE)
TIMING = {"leaderLeaseDuration": "3s", "nodeMonitorGracePeriod": "3s", "podEvictionTimeout": "1s"}


def web(replicas: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: x, ports: [{{containerPort: 80}}]}}]}}
"""


def until(what: str, fn: Callable[[], object], timeout: float, step: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout}s: {what}")


def holder(c: Cluster) -> str:
    lease = c.store.get("Lease", LEASE_NAMESPACE, LEASE_NAME) or {}
    return (lease.get("spec") or {}).get("holderIdentity") or ""


def holder_pid(c: Cluster) -> int:
    h = holder(c)
    return int(h.rpartition("_")[2]) if h else 0


def roles(cluster: str) -> dict[int, tuple[str, str | None]]:
    return daemonproc.find_all(cluster)


def test_a_standby_control_plane_takes_over_and_a_stalled_leader_stands_down(cluster_name, kernel):
    # One host, the node agents in their own process, two control-plane candidates: nothing runs twice.
    c = Cluster.up({"spec": {"nodes": 2, "timing": TIMING}}, name=cluster_name, daemon=False)
    try:
        for _ in range(2):
            run_netsim("controlplane", "--cluster", cluster_name, "--detach")
        run_netsim("agent", "--cluster", cluster_name, "--host", "local", "--detach")
        assert run_netsim("agent", "--cluster", cluster_name, "--host", "local", check=False).returncode == 1
        cps = until("two control planes", lambda: [p for p, (r, _) in roles(cluster_name).items()
                                                   if r == "controlplane"] if len(roles(cluster_name)) == 3 else [],
                    20)
        first = until("a leader", lambda: holder_pid(c) in cps and holder_pid(c), 20)
        c.apply(web(2), timeout=60)
        assert {o.node_name(p) for p in c.store.list("Pod", "default")} <= {"node-1", "node-2"}

        # A stalled leader (SIGSTOP: alive, not renewing) loses the lease once it expired on the standby's clock.
        os.kill(first, signal.SIGSTOP)
        t0 = time.monotonic()
        second = until("a takeover", lambda: holder_pid(c) not in (0, first) and holder_pid(c), 15, 0.02)
        took = time.monotonic() - t0
        print(f"takeover after a stalled leader: {took:.2f}s (lease {LEASE}s, bound {CFG.takeover_bound():.2f}s)")
        assert CFG.lease_duration - CFG.retry_period <= took <= CFG.takeover_bound() + 1.5
        c.apply(web(3), timeout=60)  # the new leader's controllers act
        assert len([p for p in c.store.list("Pod", "default") if o.is_ready(p)]) == 3

        # Resumed, the old leader sees the lease taken and does not lead: the holder stays.
        os.kill(first, signal.SIGCONT)
        time.sleep(3 * CFG.retry_period + 0.5)
        assert holder_pid(c) == second

        # A leader killed outright: its pid on this machine is gone, the standby takes over at its next retry.
        os.kill(second, signal.SIGKILL)
        t0 = time.monotonic()
        until("the resumed one leads", lambda: holder_pid(c) == first, 10, 0.02)
        took = time.monotonic() - t0
        print(f"takeover after a killed leader: {took:.2f}s")
        assert took <= (1 + 1.2) * CFG.retry_period + 1.5
        c.apply(web(1), timeout=60)
        until("scaled down", lambda: len(c.store.list("Pod", "default")) == 1, 30)
    finally:
        c.close()
        with_stopped = [p for p in roles(cluster_name)]
        for pid in with_stopped:  # a SIGSTOPped process takes no SIGTERM: wake it for `down`
            os.kill(pid, signal.SIGCONT)
    lifecycle.down(kernel, cluster_name)
    assert roles(cluster_name) == {}


def test_killing_one_hosts_agent_replaces_its_pods_on_the_other_hosts(cluster_name, kernel):
    hosts = [{"name": f"host-{x}", "address": f"192.168.77.{i + 1}"} for i, x in enumerate("abc")]
    c = Cluster.up({"spec": {"nodes": 6, "hosts": hosts, "timing": TIMING}}, name=cluster_name)
    try:
        procs = roles(cluster_name)
        agents = {h: pid for pid, (r, h) in procs.items() if r == "agent"}
        assert sorted(agents) == ["host-a", "host-b", "host-c"]
        assert sorted(r for r, _ in procs.values()) == ["agent", "agent", "agent", "daemon"]
        on_b = {n.name for n in c.spec.nodes if n.host == "host-b"}
        assert on_b == {"node-2", "node-5"}
        c.apply(web(6), timeout=60)
        before = {o.name(p): (o.node_name(p), (p.get("status") or {}).get("podIP")) for p in c.store.list("Pod", "default")}
        assert {n for n, _ in before.values()} & on_b

        os.kill(agents["host-b"], signal.SIGKILL)
        t0 = time.monotonic()
        until("host-b's nodes NotReady",
              lambda: all(not node_ready(n) for n in c.store.list("Node") if o.name(n) in on_b), 30)
        print(f"host-b's nodes NotReady after {time.monotonic() - t0:.1f}s")

        def replaced() -> bool:
            live = [p for p in c.store.list("Pod", "default") if not o.is_terminating(p)]
            return len(live) == 6 and all(o.is_ready(p) and o.node_name(p) not in on_b for p in live)
        until("6 ready pods off host-b", replaced, 60, 0.2)
        print(f"pods replaced after {time.monotonic() - t0:.1f}s")
        # the other hosts' nodes and pods were left alone
        assert all(node_ready(n) for n in c.store.list("Node") if o.name(n) not in on_b)
        now = {o.name(p): (o.node_name(p), (p.get("status") or {}).get("podIP")) for p in c.store.list("Pod", "default")}
        assert all(now[k] == v for k, v in before.items() if v[0] not in on_b)

        # host-b's agent back: its nodes Ready, the other hosts' sandboxes untouched by its adoption
        run_netsim("agent", "--cluster", cluster_name, "--host", "host-b", "--detach")
        until("host-b's nodes Ready", lambda: all(node_ready(n) for n in c.store.list("Node")), 30)
        until("host-b's old pods gone", lambda: len(c.store.list("Pod", "default")) == 6, 30)
        after = {o.name(p): (o.node_name(p), (p.get("status") or {}).get("podIP"), o.is_ready(p))
                 for p in c.store.list("Pod", "default")}
        assert all(after[k][:2] == v and after[k][2] for k, v in now.items() if k in after)
    finally:
        c.close()
    lifecycle.down(kernel, cluster_name)
    assert roles(cluster_name) == {}
