"""The cluster split into processes (issue #17 item 2): node agents per host (`netsim agent`), the control
plane elected among candidates (`netsim controlplane`, the daemon), handing over when the leader dies;
`down` kills every process of the cluster.

Not tested here: a leader stalled (SIGSTOP) rather than dead. On the SQLite store a process stopped inside
a write transaction holds the database's one write lock and every other process waits for it; the lease
rules for a leader that stops renewing are tested on their own in tests/unit/test_leader.py."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import pytest

from netsim import daemonproc, lifecycle, naming
from netsim.api import Cluster
from netsim.controlplane import objects as o
from netsim.controlplane.nodes import node_ready
from netsim.leader import LEASE_NAME, LEASE_NAMESPACE, LeaderConfig
from tests.conftest import run_netsim

pytestmark = pytest.mark.root

LEASE = 5.0  # spec.timing.leaderLeaseDuration of these clusters (short, yet long enough for a loaded machine)
CFG = LeaderConfig.for_lease(LEASE)
TIMING = {"leaderLeaseDuration": "5s", "nodeMonitorGracePeriod": "3s", "podEvictionTimeout": "1s"}


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


def election_key(cluster: str) -> str:
    """The holder named by the etcd election key (netsim/leader_etcd.py); '' when there is none."""
    from netsim.leader_etcd import election_key as key_of
    from netsim.storefactory import open_store
    store = open_store(cluster)
    try:
        _, kvs, _ = store.etcd.range(key_of(store))
    finally:
        store.close()
    return kvs[0].value.decode() if kvs else ""


def election_log(cluster: str) -> str:
    """What the cluster's processes logged about the election (for a failure's message)."""
    d = naming.state_dir(cluster)
    out = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".log"):
            with open(os.path.join(d, name), errors="replace") as f:
                out += [f"{name}: {line.rstrip()}" for line in f if "lead" in line or "election" in line or "lock" in line]
    return "\n".join(out[-40:])


def roles(cluster: str) -> dict[int, tuple[str, str | None]]:
    return daemonproc.find_all(cluster)


@pytest.mark.parametrize("store", ["sqlite", "etcd"])
def test_hosts_agents_and_an_elected_control_plane(cluster_name, kernel, store):
    # 3 hosts x 2 nodes: the daemon (control plane only), a host agent per host, and a standby control plane,
    # all connected to the one store: SQLite's file, or etcd (the election then decided by a key on an etcd
    # lease, netsim/leader_etcd.py).
    hosts = [{"name": f"host-{x}", "address": f"192.168.77.{i + 1}"} for i, x in enumerate("abc")]
    c = Cluster.up({"spec": {"nodes": 6, "hosts": hosts, "timing": TIMING, "store": {"type": store},
                             "autoscaling": {"metricResolution": "1s"}}},
                   name=cluster_name)
    try:
        run_netsim("controlplane", "--cluster", cluster_name, "--detach")
        procs = until("five processes", lambda: roles(cluster_name) if len(roles(cluster_name)) == 5 else {}, 20)
        agents = {h: pid for pid, (r, h) in procs.items() if r == "agent"}
        assert sorted(agents) == ["host-a", "host-b", "host-c"]
        daemon = next(p for p, (r, _) in procs.items() if r == "daemon")
        standby = next(p for p, (r, _) in procs.items() if r == "controlplane")
        assert holder_pid(c) == daemon
        assert run_netsim("agent", "--cluster", cluster_name, "--host", "host-a", check=False).returncode == 1
        on_b = {n.name for n in c.spec.nodes if n.host == "host-b"}
        assert on_b == {"node-2", "node-5"}
        c.apply(web(6), timeout=60)
        before = {o.name(p): (o.node_name(p), (p.get("status") or {}).get("podIP")) for p in c.store.list("Pod", "default")}
        assert {n for n, _ in before.values()} & on_b
        # Pod usage: each host's agent samples its own pods, the control plane joins them (as metrics-server
        # scrapes every node's kubelet) for the HPA and `netsim top`.
        web_keys = {f"default/{n}" for n in before}
        assert until("every web pod's usage", lambda: web_keys <= set(c.metrics().pods), 20)

        # The leader killed: its pid on this machine is gone, so the standby takes over at its next retry, well
        # within one lease period (a leader that stops renewing otherwise: tests/unit/test_leader.py). The
        # standby must be competing by then: a process still importing (seconds on a loaded machine) is not a
        # candidate yet. Its health record is written after its first election attempt and first pass.
        until("the standby competing",
              lambda: os.path.exists(os.path.join(naming.state_dir(cluster_name), f"controlplane-{standby}.health.json")),
              60)
        leader = holder_pid(c)
        other = standby if leader == daemon else daemon
        assert leader in (daemon, standby)
        os.kill(leader, signal.SIGKILL)
        t0 = time.monotonic()
        until("a takeover", lambda: holder_pid(c) == other, 15, 0.02)
        took = time.monotonic() - t0
        print(f"takeover from a killed leader: {took:.2f}s (lease {LEASE}s)")
        assert took <= min(CFG.lease_duration, (1 + 1.2) * CFG.retry_period + 1.5), election_log(cluster_name)
        if store == "etcd":  # on etcd the key on the new leader's etcd lease decides, the Lease object shows it
            assert until("the election key moved", lambda: election_key(cluster_name).endswith(f"_{other}"), 5)

        # One host's agent killed: its nodes NotReady, their pods replaced on the other hosts' nodes by the
        # new leader's controllers; the other hosts' pods untouched.
        os.kill(agents["host-b"], signal.SIGKILL)
        t0 = time.monotonic()
        until("host-b's nodes NotReady",
              lambda: all(not node_ready(n) for n in c.store.list("Node") if o.name(n) in on_b), 30)
        print(f"host-b's nodes NotReady after {time.monotonic() - t0:.1f}s")
        st = run_netsim("status", "--cluster", cluster_name, "-o", "json", check=False)
        assert st.returncode == 1, st.stderr  # an agent of the spec's hosts is down
        info = json.loads(st.stdout)
        assert info["agents"]["host-b"] == {"pid": None, "running": False, "nodes": ["node-2", "node-5"],
                                            "components": {}}
        assert info["agents"]["host-a"]["running"] and "kube-proxy/node-1" in info["agents"]["host-a"]["components"]
        assert info["controlPlane"]["leader"].endswith(f"_{other}") and info["controlPlane"]["pids"] == [other]

        def replaced() -> bool:
            live = [p for p in c.store.list("Pod", "default") if not o.is_terminating(p)]
            return len(live) == 6 and all(o.is_ready(p) and o.node_name(p) not in on_b for p in live)
        until("6 ready pods off host-b", replaced, 60, 0.2)
        print(f"pods replaced after {time.monotonic() - t0:.1f}s")
        assert all(node_ready(n) for n in c.store.list("Node") if o.name(n) not in on_b)
        now = {o.name(p): (o.node_name(p), (p.get("status") or {}).get("podIP")) for p in c.store.list("Pod", "default")}
        assert all(now[k] == v for k, v in before.items() if v[0] not in on_b)

        # host-b's agent back: its nodes Ready, its old pods finished, the other hosts' sandboxes untouched.
        run_netsim("agent", "--cluster", cluster_name, "--host", "host-b", "--detach")
        until("host-b's nodes Ready", lambda: all(node_ready(n) for n in c.store.list("Node")), 30)
        until("host-b's old pods gone", lambda: len(c.store.list("Pod", "default")) == 6, 30)
        after = {o.name(p): (o.node_name(p), (p.get("status") or {}).get("podIP"), o.is_ready(p))
                 for p in c.store.list("Pod", "default")}
        assert all(after[k][:2] == v and after[k][2] for k, v in now.items() if k in after)

        assert run_netsim("status", "--cluster", cluster_name).returncode == 0
        c.apply(web(3), timeout=60)  # the new leader's controllers scale
        until("scaled down", lambda: len(c.store.list("Pod", "default")) == 3, 30)
    finally:
        c.close()
    lifecycle.down(kernel, cluster_name)
    assert roles(cluster_name) == {}
