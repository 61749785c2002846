"""Containers over their life as the kubelet runs them (probes, liveness restarts, apply's waiting) and the
node fields a kubelet sets, on one shared three-node cluster with zones."""

from __future__ import annotations

import os
import time

import pytest

from netsim import daemonctl
from netsim.api import Cluster
from netsim.controlplane.nodes import goarch
from tests.conftest import live_cluster

pytestmark = pytest.mark.root

SPEC = {"nodes": [{"name": "node-1", "zone": "zone-a", "region": "r1"},
                  {"name": "node-2", "zone": "zone-b", "region": "r1"},
                  {"name": "node-3", "zone": "zone-b", "region": "r1"}]}


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "life", SPEC) as c:
        yield c


def _wait(predicate, timeout: float = 20.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def test_selectors_and_affinities_written_for_real_clusters_schedule(cluster: Cluster):
    arch = goarch(os.uname().machine)
    node = cluster.store.get("Node", None, "node-2")
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/os"] == labels["beta.kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == labels["beta.kubernetes.io/arch"] == arch
    assert labels["topology.kubernetes.io/zone"] == "zone-b" and labels["topology.kubernetes.io/region"] == "r1"
    info = node["status"]["nodeInfo"]
    assert info["architecture"] == arch and info["kernelVersion"] == os.uname().release
    assert node["status"]["capacity"]["pods"] == "110" and int(node["status"]["capacity"]["cpu"]) >= 1
    cluster.apply(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: zoned}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: zoned}}}}
  template:
    metadata: {{labels: {{app: zoned}}}}
    spec:
      nodeSelector: {{kubernetes.io/os: linux, beta.kubernetes.io/arch: {arch}}}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{{key: topology.kubernetes.io/zone, operator: In, values: [zone-b]}}]
      containers: [{{name: app, image: nginx, ports: [{{containerPort: 80}}]}}]
""", timeout=60)
    pods = [p for p in cluster.pods("default") if p["metadata"]["name"].startswith("zoned-")]
    assert len(pods) == 4
    assert {p["spec"]["nodeName"] for p in pods} <= {"node-2", "node-3"}
    assert all(o_ready(p) for p in pods)


def o_ready(pod) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def _apply_service(cluster: Cluster, name: str) -> tuple[float, float]:
    """Seconds an apply of an unrelated Service took, and the longest daemon pass it waited through."""
    from netsim import daemonctl
    t0 = time.monotonic()
    cluster.apply(f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{selector: {{app: many}}, ports: [{{port: 80}}]}}
""", timeout=30)
    elapsed = time.monotonic() - t0
    return elapsed, float((daemonctl.read_marker(cluster.name) or {}).get("passSeconds") or 0.0)


def test_apply_waits_only_for_what_it_applied_and_says_why_not_ready(cluster: Cluster):
    cluster.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: many}
spec:
  replicas: 100
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec: {containers: [{name: app, image: nginx, ports: [{containerPort: 80}]}]}
""", timeout=180)
    # Two of each, so one apply that the loaded machine happened to slow down does not decide.
    (b1, p1), (b2, p2) = _apply_service(cluster, "before-1"), _apply_service(cluster, "before-2")
    baseline, pass_before = max(b1, b2), max(p1, p2)
    with pytest.raises(Exception) as err:
        cluster.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: crash}
spec:
  replicas: 1
  selector: {matchLabels: {app: crash}}
  template:
    metadata: {labels: {app: crash}}
    spec: {containers: [{name: app, image: busybox, command: [sh, -c, "exit 3"]}]}
""", timeout=4)
    text = str(err.value)
    assert "pod/crash-" in text and "container app:" in text, text
    assert "CrashLoopBackOff (back-off 10s restarting failed container=app" in text, text
    (a1, p1), (a2, p2) = _apply_service(cluster, "after-1"), _apply_service(cluster, "after-2")
    elapsed, pass_after = min(a1, a2), max(p1, p2)
    # The crashing pod may cost the unrelated apply one pass (the one under way when its write landed) or
    # one look of the wait (a pass that writes leaves no marker to wake it: daemonctl.LOOK_SECONDS), never a
    # wait for that pod (its timeout): allow one of the longer, and one more for the noise of a loaded machine.
    longest = max(pass_before, pass_after, daemonctl.LOOK_SECONDS)
    assert elapsed <= baseline + 2 * longest, (elapsed, baseline, longest)
    cluster.scale("Deployment", "many", 101, timeout=60)  # scale, too, waits for its own pods only
    assert len([p for p in cluster.pods("default") if p["metadata"]["name"].startswith("many-")]) == 101


def _events(cluster: Cluster, pod: str) -> list[tuple[str, str]]:
    from netsim.controlplane.events import list_events
    return [(e.reason, e.message) for e in list_events(cluster.store) if e.object == f"pod/default/{pod}"
            or e.object.endswith(f"/{pod}")]


def _status(cluster: Cluster, pod: str, container: str = "app") -> dict:
    p = cluster.store.get("Pod", "default", pod) or {}
    return next((c for c in (p.get("status") or {}).get("containerStatuses") or [] if c["name"] == container), {})


def test_liveness_failure_kills_and_restarts_a_command_container(cluster: Cluster, tmp_path):
    flag = tmp_path / "alive"
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: live-cmd}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    livenessProbe: {{exec: {{command: [test, -f, "{flag}"]}}, periodSeconds: 1, failureThreshold: 2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: slow-start}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    startupProbe: {{exec: {{command: [test, -f, "{flag}.never"]}}, periodSeconds: 1, failureThreshold: 2}}
    livenessProbe: {{exec: {{command: ["false"]}}, periodSeconds: 1, failureThreshold: 1}}
""", wait=False)
    assert _wait(lambda: _status(cluster, "live-cmd").get("restartCount", 0) >= 1, 20), _status(cluster, "live-cmd")
    flag.touch()  # healthy from now on: no more kills
    st = _status(cluster, "live-cmd")
    assert st["lastState"]["terminated"]["exitCode"] == 143  # sleep ended by SIGTERM
    events = _events(cluster, "live-cmd")
    assert ("Killing", "Container app failed liveness probe, will be restarted") in events, events
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed") for r, m in events), events
    assert _wait(lambda: "running" in _status(cluster, "live-cmd").get("state", {}), 20)
    count = _status(cluster, "live-cmd")["restartCount"]
    time.sleep(2.5)
    assert _status(cluster, "live-cmd")["restartCount"] == count
    # The startup probe gates liveness: only the startup failure kills, never the failing liveness probe.
    events = _events(cluster, "slow-start")
    assert ("Killing", "Container app failed startup probe, will be restarted") in events, events
    assert not any(m.startswith("Liveness") or "failed liveness" in m for _, m in events), events
    assert _status(cluster, "slow-start").get("started") is not True


def test_liveness_of_a_played_container_is_real_and_a_restart_closes_and_reopens_its_ports(cluster: Cluster):
    """The workload server answers HTTP, so probes of an image-played container are real: a GET answered
    200 makes it ready, a startup probe gates it; an HTTPS liveness probe of its plain-HTTP port fails (as
    it would against the real image) and restarts it: its ports close, reopen, then stay closed for the
    back-off while it is Waiting in CrashLoopBackOff."""
    cluster.apply("""
apiVersion: v1
kind: Pod
metadata: {name: live-img}
spec:
  containers:
  - name: app
    image: nginx
    ports: [{containerPort: 8080}]
    readinessProbe: {httpGet: {port: 8080, path: /ready}, periodSeconds: 1}
    livenessProbe: {httpGet: {port: 8080, path: /healthz}, periodSeconds: 1, failureThreshold: 1}
  - name: side
    image: envoy
    startupProbe: {tcpSocket: {port: 9901}, periodSeconds: 1}
  - name: rpc
    image: grpc-server
    readinessProbe: {grpc: {port: 9000}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: unserved}
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    readinessProbe: {tcpSocket: {port: 1234}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: dead-img}
spec:
  containers:
  - name: app
    image: nginx
    ports: [{containerPort: 8080}]
    livenessProbe: {httpGet: {port: 8080, scheme: HTTPS}, periodSeconds: 1, failureThreshold: 1}
""", wait=False)
    assert _wait(lambda: o_ready(cluster.store.get("Pod", "default", "live-img") or {}), 20)
    assert _wait(lambda: _status(cluster, "live-img", "side").get("started") is True, 10)
    assert _wait(lambda: (_status(cluster, "dead-img").get("state") or {}).get("waiting", {}).get("reason")
                 == "CrashLoopBackOff", 20), _status(cluster, "dead-img")
    st = _status(cluster, "dead-img")
    assert st["restartCount"] >= 1 and st["lastState"]["terminated"]["exitCode"] == 137
    assert "back-off 10s restarting failed container=app pod=dead-img_default" in st["state"]["waiting"]["message"]
    events = _events(cluster, "dead-img")
    assert ("Killing", "Container app failed liveness probe, will be restarted") in events, events
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed: Get \"https://") for r, m in events), events
    (res,) = cluster.probe("node/node-1", "default/dead-img", [8080], timeout=1)
    assert res.outcome == "refused"  # killed: its port is closed during the back-off
    assert _status(cluster, "live-img").get("restartCount", 0) == 0  # its liveness GETs are answered 200
    assert _status(cluster, "live-img", "rpc").get("ready") is True  # grpc Health/Check answered SERVING
    # A probe aimed at a port nothing serves fails: never ready, with the prober's own words.
    assert not o_ready(cluster.store.get("Pod", "default", "unserved") or {})
    assert any(r == "Unhealthy" and m.startswith("Readiness probe failed: dial tcp ") and
               m.endswith(":1234: connect: connection refused") for r, m in _events(cluster, "unserved"))


def test_http_clients_get_http_through_a_service_and_a_pod_that_cannot_become_ready_fails_apply_at_once(
        cluster: Cluster):
    """A GET through a Service (kube-proxy's DNAT to a played container) is answered HTTP/1.1 200 with the
    serving pod in the body; an applied pod that Failed for good makes `apply` say so without waiting."""
    cluster.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: nginx, args: ["--port=8080"], ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
""")
    vip = cluster.store.get("Service", "default", "web")["spec"]["clusterIP"]
    script = (f"import http.client, json; c = http.client.HTTPConnection('{vip}', 80, timeout=5); "
              "c.request('GET', '/'); r = c.getresponse(); "
              "print(r.status, r.getheader('Content-Type'), json.loads(r.read())['pod'])")
    out = cluster.exec("node/node-2", ["python3", "-c", script])
    status, ctype, pod = out.stdout.split()
    assert (status, ctype) == ("200", "application/json") and pod.startswith("default/web-"), out
    t0 = time.monotonic()
    with pytest.raises(Exception) as err:
        cluster.apply("""
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers:
  - {name: app, image: busybox, command: [sh, -c, "sleep 1; exit 2"],
     readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}}
""", timeout=120)
    assert "cannot become ready: pod/once: container app: Error (exit code 2)" in str(err.value), str(err.value)
    assert time.monotonic() - t0 < 60  # said once it Failed, not after the timeout
