"""The control plane driving a real cluster: workloads, rollouts, faults, DNS, Jobs, validation, timeline.

Every test builds its own small cluster (2-3 nodes, its own daemon) through `netsim.api.Cluster` and removes
it by name in a finaliser, whatever happened. What is checked is what Kubernetes users see (kubectl-shaped
CLI output, pod and endpoint state) and what the kernel holds (one pod network namespace per live pod).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from netsim import daemonctl, lifecycle, naming
from netsim.api import Cluster
from netsim.cli.main import cli
from netsim.controlplane import objects as o
from netsim.kernel import netns as netns_mod
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from tests.integration.leaks import HeldNetns

pytestmark = pytest.mark.root

PREFIX = "h11"  # cluster names end up in netns names: netsim-<c>.pod.<ns>_<pod>
BAD = Path(__file__).resolve().parents[2] / "unit" / "model" / "bad"


# -- fixtures and helpers --------------------------------------------------------------------------------

def cluster_spec(name: str, nodes: int):
    return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                          "spec": {"nodes": nodes}}, Source("<test>"))


def neighbour_table() -> tuple[int, int, int]:
    """(entries, table_fulls, gc_thresh3) of the kernel's ARP table. The table and its limits are shared by
    every network namespace on the machine: a big cluster elsewhere (a thousand pods, each with a neighbour
    entry for its gateway and one on the node for it) fills it past gc_thresh3, and then no namespace can
    resolve a neighbour (dmesg: "neighbor table overflow")."""
    with open("/proc/net/stat/arp_cache") as f:
        rows = [line.split() for line in f.read().splitlines()[1:] if line.strip()]  # one row per CPU
    with open("/proc/sys/net/ipv4/neigh/default/gc_thresh3") as f:
        thresh3 = int(f.read())
    return int(rows[0][0], 16), sum(int(r[-1], 16) for r in rows), thresh3


@contextmanager
def running_cluster(kernel, nodes: int = 2, *, env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """A cluster with its daemon under a unique name; `env` reaches the daemon (it inherits ours at start).
    The finaliser removes it by name even when `up` itself failed half-way."""
    _, fulls, _ = neighbour_table()
    time.sleep(0.2)
    entries, fulls_now, thresh3 = neighbour_table()
    if fulls_now > fulls:
        pytest.skip(f"the machine's ARP table is overflowing now ({entries} entries, gc_thresh3 {thresh3}, "
                    f"{fulls_now - fulls} 'table full' in 0.2 s): another cluster holds the entries, and no "
                    "namespace can resolve neighbours until it goes")
    fulls = fulls_now
    name = f"{PREFIX}{secrets.token_hex(3)}"
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    c = None
    try:
        c = Cluster.up(cluster_spec(name, nodes), timeout=60)
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        saved = {}
        yield c
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        if c is not None:
            c.close()
            # Shown by pytest only when the test failed: what the daemon said (failed passes, kernel errors).
            print(f"--- daemon.log of {name} (last lines) ---\n{daemonctl.log_tail(name, 60)}")
            entries, fulls_after, thresh3 = neighbour_table()
            print(f"ARP table: {entries} entries (gc_thresh3 {thresh3}), {fulls_after - fulls} 'table full' "
                  "events during the test (neighbour resolution failed machine-wide)")
        lifecycle.down(kernel, name)


@pytest.fixture
def cluster(kernel) -> Iterator[Cluster]:
    with running_cluster(kernel, 2) as c:
        yield c


GRACE = 3  # node-monitor grace period given to the daemon of the fault tests


@pytest.fixture
def cluster3(kernel) -> Iterator[Cluster]:
    """Three nodes and short node-lifecycle timers (grace 3 s, eviction 1 s) for the fault tests."""
    with running_cluster(kernel, 3, env={"NETSIM_NODE_GRACE": str(GRACE), "NETSIM_POD_EVICTION": "1"}) as c:
        yield c


def netsim(c: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The real `netsim` command (a process of its own, as a user runs it)."""
    proc = subprocess.run([sys.executable, "-m", "netsim.cli.main", *args, "--cluster", c.name],
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"netsim {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def pod_netns(c: Cluster, namespace: str = "default") -> set[str]:
    """Pod sandboxes the kernel holds for one Kubernetes namespace, as pod names."""
    prefix = f"{naming.cluster_prefix(c.name)}{naming.POD}{naming.SEP}{namespace}{naming.POD_SEP}"  # short names
    return {n.removeprefix(prefix) for n in netns_mod.list_names(prefix)}


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or check}; last value {last!r}")


def live(pods: list[dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    return [p for p in pods if o.name(p).startswith(prefix) and not o.is_terminating(p) and not o.is_terminal(p)]


def ready_ips(c: Cluster, service: str, namespace: str = "default") -> list[str]:
    out = []
    for sl in c.get("EndpointSlice", namespace):
        if o.labels(sl).get("kubernetes.io/service-name") != service:
            continue
        out += [e["addresses"][0] for e in sl.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")]
    return sorted(out)


def deployment(name: str, replicas: int, *, image: str = "nginx:1.25", port: int = 80) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: {name}, image: "{image}", ports: [{{containerPort: {port}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: {port}, targetPort: {port}}}]
"""


def assert_namespaces_follow_pods(c: Cluster, prefix: str, replicas: int) -> None:
    pods = c.pods("default")
    running = [p for p in live(pods, prefix) if o.phase(p) == "Running" and o.is_ready(p)]
    assert len(running) == replicas, [o.name(p) for p in pods]
    assert [p for p in pods if o.name(p).startswith(prefix)] == running, "terminating pods left after convergence"
    sandboxes = {n for n in pod_netns(c) if n.startswith(prefix)}
    assert sandboxes == {o.name(p) for p in running}
    assert len({p["status"]["podIP"] for p in running}) == replicas


# -- 1. scaling ------------------------------------------------------------------------------------------

def test_deployment_scales_3_10_2_with_namespaces_following(cluster):
    cluster.apply(deployment("web", 3))
    assert_namespaces_follow_pods(cluster, "web-", 3)
    cluster.scale("Deployment", "web", 10)
    assert_namespaces_follow_pods(cluster, "web-", 10)
    assert len(ready_ips(cluster, "web")) == 10
    cluster.scale("Deployment", "web", 2)
    assert_namespaces_follow_pods(cluster, "web-", 2)
    assert ready_ips(cluster, "web") == sorted(p["status"]["podIP"] for p in live(cluster.pods("default"), "web-"))
    text = netsim(cluster, "get", "deployments").stdout
    assert text.split("\n")[1].split()[:4] == ["web", "2/2", "2", "2"], text


# -- 2. rolling update and undo under a probe loop --------------------------------------------------------

class ProbeLoop(threading.Thread):
    """Probes the Service every ~50 ms from a node (its own Cluster handle: the store's SQLite connection and
    the kernel sockets belong to one thread) and samples the Service's ready endpoints."""

    def __init__(self, name: str, service: str):
        super().__init__(daemon=True)
        self.cluster_name, self.service = name, service
        self.stop = threading.Event()
        self.results: list[tuple[float, bool, str]] = []
        self.min_ready = 10**6
        self.served_by: set[str] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        c = Cluster(self.cluster_name)
        try:
            while not self.stop.is_set():
                r = c.probe("node/node-1", f"svc/default/{self.service}", ports=[80], timeout=0.5)[0]
                self.results.append((time.monotonic(), r.connected,
                                     r.served_by or f"{r.outcome} {r.error} {r.ms:.0f}ms"))
                if r.connected:
                    self.served_by.add(r.served_by or "")
                self.min_ready = min(self.min_ready, len(ready_ips(c, self.service)))
                time.sleep(0.05)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            c.close()


def test_rolling_update_and_undo_never_drop_the_service(cluster):
    cluster.apply(deployment("web", 3))
    first = {o.name(p) for p in live(cluster.pods("default"), "web-")}
    loop = ProbeLoop(cluster.name, "web")
    loop.start()
    try:
        wait_for(lambda: len(loop.results) >= 3, 10, what="the probe loop to start")
        cluster.set_image("web", "nginx:1.26")
        assert "successfully rolled out" in cluster.wait_rollout("web", timeout=60)
        cluster.wait_converged(60)
        second = {o.name(p) for p in live(cluster.pods("default"), "web-")}
        assert not first & second
        images = {p["spec"]["containers"][0]["image"] for p in live(cluster.pods("default"), "web-")}
        assert images == {"nginx:1.26"}

        assert cluster.rollout_undo("web") == "deployment.apps/web rolled back"
        cluster.wait_rollout("web", timeout=60)
        cluster.wait_converged(60)
        time.sleep(0.3)  # a few probes after the last change too
    finally:
        loop.stop.set()
        loop.join(10)
    assert loop.error is None, loop.error
    assert len(loop.results) >= 10
    failed = [r for r in loop.results if not r[1]]
    assert not failed, f"{len(failed)} of {len(loop.results)} probes failed: {failed[:5]}"
    assert loop.min_ready >= 1, "the Service dropped to zero ready endpoints"
    third = {o.name(p) for p in live(cluster.pods("default"), "web-")}
    images = {p["spec"]["containers"][0]["image"] for p in live(cluster.pods("default"), "web-")}
    assert images == {"nginx:1.25"}
    # Pods of all three generations answered the probes.
    served = {s.removeprefix("default/") for s in loop.served_by}
    assert served & first and served & second and served & third, (served, first, second, third)
    assert_namespaces_follow_pods(cluster, "web-", 3)

    # kubectl rollout history: revision 1 became 3 when undone to it.
    history = netsim(cluster, "rollout", "history", "deployment/web").stdout.splitlines()
    assert history[:2] == ["deployment.apps/web", "REVISION  CHANGE-CAUSE"]
    assert [line.split()[0] for line in history[2:]] == ["2", "3"]
    rs = {o.annotations(x)["deployment.kubernetes.io/revision"]: x["spec"]["replicas"]
          for x in cluster.get("ReplicaSet", "default")}
    assert rs == {"2": 0, "3": 3}
    status = netsim(cluster, "rollout", "status", "deployment/web").stdout
    assert 'deployment "web" successfully rolled out' in status


# -- 3. faults: killed pods, failed nodes -------------------------------------------------------------------

def test_killed_pod_heals_and_failed_node_is_replaced(cluster3):
    c = cluster3
    c.apply(deployment("web", 3))
    victim = live(c.pods("default"), "web-")[0]
    name, old_ip = o.name(victim), victim["status"]["podIP"]
    # Held open, the old namespace keeps its inode number: nsfs would give a freed number to the next
    # namespace at once, and the new sandbox could then show the old one's inode.
    held = HeldNetns(naming.pod_ns(c.name, "default", name))
    old_inode = held.inode

    c.kill_pod(name)
    def healed():
        p = next((x for x in c.pods("default") if o.name(x) == name), None)
        return p if p and o.is_ready(p) and p["status"].get("podIP") not in (None, old_ip) else None
    pod = wait_for(healed, 20, what=f"{name} to get a new sandbox")
    c.wait_converged(30)
    new_ip = pod["status"]["podIP"]
    assert os.stat(netns_mod.netns_path(naming.pod_ns(c.name, "default", name))).st_ino != old_inode
    held.close()
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 1
    wait_for(lambda: new_ip in ready_ips(c, "web") and old_ip not in ready_ips(c, "web"), 10,
             what="endpoints to follow the new IP")
    row = next(line for line in netsim(c, "get", "pods").stdout.splitlines() if line.startswith(name))
    assert row.split()[1:4] == ["1/1", "Running", "1"], row
    r = c.probe("node/node-2", f"default/{name}", ports=[80])[0]
    assert r.connected and r.probe.target == new_ip

    # A node cut off: NotReady after the grace period, its pods replaced elsewhere; back: stale pods gone.
    web = live(c.pods("default"), "web-")
    failed_node = max(("node-2", "node-3"), key=lambda n: sum(o.node_name(p) == n for p in web))
    on_node = {o.name(p) for p in web if o.node_name(p) == failed_node}
    assert on_node, "the scheduler spread nothing to node-2 or node-3"
    t0 = time.monotonic()
    c.node_fail(failed_node)

    def node_ready() -> str:
        n = c.store.get("Node", None, failed_node)
        return (o.condition(n, "Ready") or {}).get("status", "")

    wait_for(lambda: node_ready() != "True", 20, 0.05, what=f"{failed_node} NotReady")
    # Heartbeats carry whole seconds (as the API's timestamps do), so the grace runs from up to 1 s earlier.
    assert time.monotonic() - t0 >= GRACE - 1.05, "NotReady before the grace period"
    assert node_ready() == "Unknown"
    assert "NotReady" in netsim(c, "get", "nodes").stdout

    def replaced():
        pods = live(c.pods("default"), "web-")
        ok = [p for p in pods if o.node_name(p) != failed_node and o.is_ready(p)]
        return len(ok) == 3 and not {o.name(p) for p in ok} & on_node
    wait_for(replaced, 30, what="replacement pods on the other nodes")
    wait_for(lambda: len(ready_ips(c, "web")) == 3, 10, what="3 ready endpoints")
    c.wait_converged(30)  # the endpoints are in the store; kube-proxy syncs at the end of the same pass
    results = c.probe("node/node-1", "svc/default/web", ports=[80], count=6, timeout=1.0)
    assert all(r.connected for r in results) and not {r.served_by for r in results} & {f"default/{n}" for n in on_node}
    # The stale pods stay Terminating while their node is unreachable (nobody can confirm they stopped).
    stale = {o.name(p) for p in c.pods("default") if o.name(p) in on_node}
    assert stale == on_node

    c.node_restore(failed_node)
    wait_for(lambda: node_ready() == "True", 20, what=f"{failed_node} Ready again")
    c.wait_converged(30)
    assert not {o.name(p) for p in c.pods("default")} & on_node
    assert not pod_netns(c) & on_node
    assert_namespaces_follow_pods(c, "web-", 3)


# -- 4. DaemonSet -----------------------------------------------------------------------------------------

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: agent, ports: [{containerPort: 9100}]}]
"""


def test_daemonset_one_pod_per_node_survives_a_node_failure(cluster3):
    c = cluster3
    c.apply(DAEMONSET)
    pods = live(c.pods("default"), "agent-")
    assert sorted(o.node_name(p) for p in pods) == ["node-1", "node-2", "node-3"]
    assert all(o.is_ready(p) for p in pods)
    assert pod_netns(c) == {o.name(p) for p in pods}
    by_node = {o.node_name(p): o.name(p) for p in pods}
    ds = c.store.get("DaemonSet", "default", "agent")
    assert ds["status"]["desiredNumberScheduled"] == 3 and ds["status"]["numberReady"] == 3

    c.node_fail("node-2")
    wait_for(lambda: (o.condition(c.store.get("Node", None, "node-2"), "Ready") or {}).get("status") == "Unknown",
             20, what="node-2 NotReady")
    time.sleep(2.5)  # well past the eviction delay: the daemon pod tolerates unreachable and stays
    pods = live(c.pods("default"), "agent-")
    assert {o.node_name(p): o.name(p) for p in pods} == by_node

    c.node_restore("node-2")
    wait_for(lambda: (o.condition(c.store.get("Node", None, "node-2"), "Ready") or {}).get("status") == "True",
             20, what="node-2 Ready")
    c.wait_converged(30)
    pods = live(c.pods("default"), "agent-")
    assert {o.node_name(p): o.name(p) for p in pods} == by_node
    assert all(o.is_ready(p) for p in pods)
    r = c.probe("node/node-1", f"default/{by_node['node-2']}", ports=[9100])[0]
    assert r.connected, r


# -- 5. StatefulSet and cluster DNS -------------------------------------------------------------------------

STATEFULSET = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80, name: http}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: 80, name: http}]}]
"""


def test_statefulset_ordered_names_and_headless_dns(cluster):
    c = cluster
    c.apply(STATEFULSET)
    pods = {o.name(p): p for p in live(c.pods("default"), "web-")}
    assert sorted(pods) == ["web-0", "web-1", "web-2"]
    assert all(o.is_ready(p) for p in pods.values())
    # Created in order, each only after the one before was Running and Ready (OrderedReady).
    creates = [e for e in c.store.events_since(0) if e["reason"] == "SuccessfulCreate"
               and e["object"].startswith("StatefulSet default/web")]
    assert [re.search(r"\bweb-\d\b", e["message"]).group(0) for e in creates] == ["web-0", "web-1", "web-2"]
    sandboxes = {e["object"].rpartition("/")[2]: e["seq"] for e in c.store.events_since(0)
                 if e["reason"] == "SandboxCreated" and e["object"].startswith("Pod default/web-")}
    # web-1 is created only after web-0 ran (its sandbox made, in an earlier pass), web-2 after web-1.
    assert sandboxes["web-0"] < creates[1]["seq"] and sandboxes["web-1"] < creates[2]["seq"]
    assert creates[0]["time"] < creates[1]["time"] < creates[2]["time"]
    assert all(pods[n]["spec"].get("hostname") == n and pods[n]["spec"].get("subdomain") == "web" for n in pods)
    assert c.service("default", "web")["spec"]["clusterIP"] == "None"

    out = c.exec("default/web-1", ["getent", "hosts", "web-0.web"])
    assert out.returncode == 0, out.stderr
    ip, fqdn = out.stdout.split()[:2]
    assert ip == pods["web-0"]["status"]["podIP"]
    assert fqdn == "web-0.web.default.svc.cluster.local"
    out = c.exec("default/web-2", ["getent", "hosts", "web.default.svc.cluster.local"])
    assert out.returncode == 0, out.stderr
    answered = {line.split()[0] for line in out.stdout.splitlines()}
    assert answered <= {p["status"]["podIP"] for p in pods.values()} and answered


# -- 6. Jobs and CronJobs -----------------------------------------------------------------------------------

JOBS = """
apiVersion: batch/v1
kind: Job
metadata: {name: ok}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: busybox, command: ["sh", "-c", "echo done; exit 0"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: busybox, command: ["sh", "-c", "exit 1"]}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: tick, image: busybox, command: ["sh", "-c", "date"]}]
"""


def _condition(c: Cluster, kind: str, name: str, typ: str) -> str | None:
    obj = c.store.get(kind, "default", name)
    return (o.condition(obj, typ) or {}).get("status") if obj else None


def test_jobs_complete_or_fail_and_cronjob_is_accepted(cluster):
    c = cluster
    c.apply(JOBS, wait=False)
    wait_for(lambda: _condition(c, "Job", "ok", "Complete") == "True", 30, 0.2, what="Job ok Complete")
    wait_for(lambda: _condition(c, "Job", "bad", "Failed") == "True", 30, 0.2, what="Job bad Failed")
    ok = c.store.get("Job", "default", "ok")
    assert ok["status"]["succeeded"] == 3
    ok_pods = [p for p in c.pods("default") if o.labels(p).get("job-name") == "ok"]
    assert len(ok_pods) == 3 and {o.phase(p) for p in ok_pods} == {"Succeeded"}
    bad = c.store.get("Job", "default", "bad")
    assert (o.condition(bad, "Failed") or {}).get("reason") == "BackoffLimitExceeded"
    assert bad["status"]["failed"] == 2  # the first try and one retry (backoffLimit 1)
    # Parallelism 2: two pods in the first pass, the third only once one of them had finished.
    creates = [e for e in c.store.events_since(0) if e["reason"] == "SuccessfulCreate"
               and e["object"] == "Job default/ok"]
    assert len(creates) == 3
    assert creates[0]["time"] == creates[1]["time"] < creates[2]["time"]
    jobs = netsim(c, "get", "jobs").stdout
    assert "3/3" in next(line for line in jobs.splitlines() if line.startswith("ok ")), jobs
    assert "0/1" in next(line for line in jobs.splitlines() if line.startswith("bad ")), jobs
    logs = netsim(c, "logs", o.name(ok_pods[0])).stdout
    assert logs.strip() == "done"

    cron = netsim(c, "get", "cronjobs").stdout.splitlines()
    assert cron[0].split()[:2] == ["NAME", "SCHEDULE"], cron
    assert cron[1].split()[:2] == ["tick", "*/1"], cron
    assert c.store.get("CronJob", "default", "tick")["spec"]["schedule"] == "*/1 * * * *"


# -- 7. invalid manifests --------------------------------------------------------------------------------------

def _expectations(path: Path) -> list[str]:
    return [line.removeprefix("# expect:").strip() for line in path.read_text().splitlines()
            if line.startswith("# expect:")]


def test_every_bad_manifest_is_rejected_and_the_store_is_unchanged(cluster):
    c = cluster
    c.apply(deployment("web", 1))
    cases = sorted(BAD.glob("*.yaml"))
    assert len(cases) >= 70
    rv0 = c.store.current_rv()
    objects_before = {k: sorted((o.key(x), x["metadata"]["resourceVersion"]) for x in c.get(k))
                      for k in ("Namespace", "Deployment", "ReplicaSet", "Pod", "Service", "EndpointSlice",
                                "DaemonSet", "StatefulSet", "Job", "CronJob", "NetworkPolicy")}
    # In process (click's runner) for speed; the same command object `netsim apply` runs.
    runner = CliRunner()
    env = {"NETSIM_CLUSTER": c.name}
    problems = []
    for path in cases:
        res = runner.invoke(cli, ["apply", "-f", str(path), "--no-wait"], env=env)
        text = res.stderr if hasattr(res, "stderr") else res.output
        if res.exit_code != 2:
            problems.append(f"{path.name}: exit {res.exit_code}: {res.output}")
            continue
        for expect in _expectations(path):
            if expect not in text or str(path) not in text:
                problems.append(f"{path.name}: {expect!r} not in {text!r}")
    assert not problems, "\n".join(problems)
    # Two through the real executable, as a user runs it.
    for path in (BAD / "multidoc-third-bad.yaml", BAD / "svc-bad-clusterip.yaml"):
        r = netsim(c, "apply", "-f", str(path), check=False)
        assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
        assert all(e in r.stderr for e in _expectations(path)), r.stderr
    changes = [ch for ch in c.store.changes_since(rv0) if ch.kind not in ("Node", "Lease")]  # heartbeats
    assert changes == [], [(ch.type, ch.kind, ch.name) for ch in changes]
    objects_after = {k: sorted((o.key(x), x["metadata"]["resourceVersion"]) for x in c.get(k))
                     for k in objects_before}
    assert objects_after == objects_before


# -- 8. the timeline and logs ---------------------------------------------------------------------------------

LOGGER = """
apiVersion: v1
kind: Pod
metadata: {name: talker, labels: {app: talker}}
spec:
  containers:
  - name: say
    image: busybox
    command: ["sh", "-c", "echo hello from $HOSTNAME_IS; echo second line; sleep 600"]
    env: [{name: HOSTNAME_IS, value: talker}]
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: talker}
spec:
  selector: {app: talker}
  ports: [{port: 8080}]
"""


def test_events_show_the_flow_and_logs_show_output(cluster):
    c = cluster
    seq0 = max([0] + [e["seq"] for e in c.store.events_since(0)])
    c.apply(LOGGER)
    pod = c.store.get("Pod", "default", "talker")
    ip = pod["status"]["podIP"]
    records = json.loads(netsim(c, "events", "-o", "json").stdout)
    ours = c.store.events_since(seq0)
    assert len(records) >= len(ours) > 0 and records[-1]["reason"] == ours[-1]["reason"]

    def first(reason: str, pred: Callable[[dict], bool] = lambda e: True) -> dict:
        for i, e in enumerate(ours):
            if e["reason"] == reason and pred(e):
                return {**e, "index": i}
        pytest.fail(f"no {reason} event in {[(e['actor'], e['reason'], e['object']) for e in ours]}")

    sched = first("Scheduled", lambda e: e["object"] == "Pod default/talker")
    assert sched["actor"] == "scheduler" and o.node_name(pod) in sched["message"]
    sandbox = first("SandboxCreated", lambda e: e["object"] == "Pod default/talker")
    assert sandbox["actor"] == f"kubelet/{o.node_name(pod)}" and ip in sandbox["message"]
    assert sandbox["duration_ms"] and sandbox["duration_ms"] > 0
    eps = first("EndpointsUpdated", lambda e: e["object"] == "Service default/talker" and ip in e["message"])
    later = [e for e in ours[eps["index"]:] if e["reason"] == "ProxySynced"]
    assert later, "no proxy sync after the endpoints changed"
    assert sched["index"] < sandbox["index"] < eps["index"]
    assert sched["time"] <= sandbox["time"] <= eps["time"] <= later[0]["time"]
    assert all(e["duration_ms"] and e["duration_ms"] > 0 for e in later), later

    # The human form: HH:MM:SS.mmm, actor, reason, duration, object, message.
    text = netsim(c, "events").stdout.splitlines()
    line = next(x for x in text if "SandboxCreated" in x and "Pod default/talker" in x)
    stamp, actor, reason, took = line.split()[:4]
    assert len(stamp) == 12 and stamp[2] == ":" and stamp[8] == "."
    assert actor.startswith("kubelet/") and reason == "SandboxCreated" and took.endswith("ms")
    assert f"pod IP {ip}" in line

    logs = wait_for(lambda: "second line" in (out := netsim(c, "logs", "talker").stdout) and out, 10,
                    what="the container's output")
    assert logs.splitlines()[:2] == ["hello from talker", "second line"]
    bad = netsim(c, "logs", "nobody", check=False)
    assert bad.returncode == 2 and "no logs" in bad.stderr


@pytest.mark.slow
def test_cronjob_runs_on_the_next_minute(cluster):
    """The daemon's CronJob controller on the real clock: the Job of the next minute boundary, named
    `<cronjob>-<minutes since the epoch>`, runs its command to completion (waits up to ~70 s)."""
    c = cluster
    c.apply(JOBS.split("---")[2], wait=False)
    applied = time.time()
    boundary = (int(applied) // 60 + 1) * 60
    job = wait_for(lambda: next((j for j in c.get("Job", "default") if o.name(j).startswith("tick-")), None),
                   boundary - applied + 15, 0.5, what="the CronJob's first Job")
    assert o.name(job) == f"tick-{boundary // 60}"
    assert job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(boundary))
    assert time.time() >= boundary, "the Job came before its schedule"
    wait_for(lambda: _condition(c, "Job", o.name(job), "Complete") == "True", 30, 0.2, what="the Job to complete")
    cj = c.store.get("CronJob", "default", "tick")
    assert cj["status"]["lastScheduleTime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(boundary))
    assert "lastSuccessfulTime" in cj["status"] and not cj["status"].get("active")
    pod = next(p for p in c.pods("default") if o.labels(p).get("job-name") == o.name(job))
    assert netsim(c, "logs", o.name(pod)).stdout.strip()  # `date` printed something
