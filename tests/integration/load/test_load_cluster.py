"""`netsim load` on a live cluster: through a Service to every endpoint, refused with no endpoints, the
JSON contract, --max-failed, the picture, and a Service losing its endpoints during the run."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from tests.conftest import NETSIM, live_cluster

pytestmark = pytest.mark.root

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: busybox}]
"""


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "ld", manifests=APP) as c:
        yield c


def netsim(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NETSIM, *args, "--cluster", name], capture_output=True, text=True, timeout=60)


def test_through_a_service_every_endpoint_answers(cluster):
    rep = cluster.load("default/client", "svc/default/web", rate=300, duration=1.0)
    assert rep["sent"] == rep["ok"] == 300, rep
    pods = {f"default/{p['metadata']['name']}" for p in cluster.pods()
            if (p["metadata"].get("labels") or {}).get("app") == "web"}
    assert set(rep["byEndpoint"]) == pods and min(rep["byEndpoint"].values()) > 30, rep["byEndpoint"]
    assert rep["target"] == f"svc/default/web ({cluster.service('default', 'web')['spec']['clusterIP']}:80/TCP)"


def test_closed_loop_clients_keep_their_connection_and_its_endpoint(cluster):
    """Two keep-alive HTTP clients through a Service with three endpoints: each stays on the pod its
    connection was balanced to (conntrack keeps the DNAT), so at most two pods answer, many times each."""
    rep = cluster.load("default/client", "svc/default/web", connections=2, duration=1.0)
    assert rep["mode"] == "closed" and rep["ok"] == rep["sent"] > 40, rep
    assert 1 <= len(rep["byEndpoint"]) <= 2, rep["byEndpoint"]
    assert all(n > 10 for n in rep["byEndpoint"].values()), rep["byEndpoint"]


def test_the_cli_json_contract_and_max_failed(cluster, tmp_path):
    out = netsim(cluster.name, "load", "--from", "default/client", "--to", "svc/default/empty", "--rate", "50",
                 "--duration", "0.4", "-o", "json", "--max-failed", "0", "--png", str(tmp_path / "l.png"))
    assert out.returncode == 1, out.stderr
    rep = json.loads(out.stdout)
    assert {"sent", "ok", "refused", "timeout", "reset", "latencyMs", "byEndpoint", "series"} <= set(rep)
    assert set(rep["latencyMs"]) == {"p50", "p90", "p99", "max"}
    # kube-proxy REJECTs a Service without endpoints with an ICMP port unreachable, which the node's kernel
    # rate-limits per peer (net.ipv4.icmp_ratelimit): a burst is refused, the rest get no answer at all.
    assert rep["refused"] + rep["timeout"] == rep["sent"] == 20, rep
    assert rep["ok"] == 0 and rep["byEndpoint"] == {}
    assert (tmp_path / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ok = netsim(cluster.name, "load", "--from", "default/client", "--to", "svc/default/web", "--connections", "2",
                "--duration", "0.3", "--max-failed", "0")
    assert ok.returncode == 0 and "closed loop" in ok.stdout and "ok " in ok.stdout, ok.stdout + ok.stderr
    bad = netsim(cluster.name, "load", "--from", "default/client", "--to", "svc/default/web", "--duration", "1")
    assert bad.returncode == 2 and "--rate" in bad.stderr


def test_scaling_to_zero_during_a_run_shows_in_the_series_and_events(cluster):
    """The losses land in the seconds after the scale-down, and the run's events name it."""
    def scale_down() -> None:
        time.sleep(1.0)
        cluster.scale("Deployment", "web", 0, wait=False)
    t = threading.Thread(target=scale_down)
    t.start()
    try:
        rep = cluster.load("default/client", "svc/default/web", rate=100, duration=3.0, timeout=0.5)
    finally:
        t.join()
        cluster.scale("Deployment", "web", 3)
    series = rep["series"]
    assert series[0]["ok"] == series[0]["sent"] == 100, series[0]
    assert series[-1]["ok"] == 0 and series[-1]["refused"] + series[-1]["timeout"] == series[-1]["sent"] > 0, \
        series[-1]
    assert any(e["event"].startswith("ScalingReplicaSet") and 0.5 < e["second"] < 2.5 for e in rep["events"]), \
        rep["events"]
