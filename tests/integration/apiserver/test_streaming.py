"""The streaming subresources with the real clients: `kubectl port-forward` (over its default WebSocket
tunnel and over plain SPDY), the Python client's WebSocket port-forward, `kubectl exec` over SPDY, and
`kubectl attach`. The pod's port is reached from inside its own network namespace: the only socket on
the host is the loopback listener kubectl opens.

One 1-node cluster for the module (its own name; kubectl's HOME and ports are the test's own)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from tests.conftest import live_cluster

pytestmark = pytest.mark.root
KUBECTL = shutil.which("kubectl")

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example/web:1, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  containers:
  - name: c
    image: busybox
    command: ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.3; done"]
"""


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "stream", {"nodes": 1}, manifests=APP) as c:
        yield c


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (scripts/setup.sh installs one)")
    env = {**os.environ, "HOME": str(tmp_path_factory.mktemp("kubectl-home"))}

    def run(*args: str, check: bool = True, timeout: float = 60, extra: dict | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run([KUBECTL, "--context", f"netsim-{cluster.name}", *args], capture_output=True,
                           text=True, timeout=timeout, env={**env, **(extra or {})}, input=stdin)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r
    run.env = env  # type: ignore[attr-defined]
    run("wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=60s")
    run("wait", "--for=condition=Ready", "pod/talker", "--timeout=60s")
    return run


def _http_get(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def _port_forward(cluster, kubectl, target: str, remote: int, env: dict) -> tuple[subprocess.Popen, int]:
    """Start `kubectl port-forward TARGET :REMOTE` (a free local port picked by kubectl) and its port;
    -v=4 makes client-go say when it falls back from the WebSocket tunnel to SPDY."""
    p = subprocess.Popen([KUBECTL, "--context", f"netsim-{cluster.name}", "port-forward", target, f":{remote}",
                          "--address", "127.0.0.1", "-v=4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**kubectl.env, **env})
    line = p.stdout.readline()  # "Forwarding from 127.0.0.1:NNNNN -> 8080"
    m = re.search(r"127\.0\.0\.1:(\d+) -> (\d+)", line)
    if m is None:
        p.kill()
        raise AssertionError(f"kubectl port-forward said {line!r}: {p.communicate()[1]}")
    assert int(m.group(2)) == 8080
    return p, int(m.group(1))


@pytest.mark.parametrize("websockets", ["true", "false"])
def test_kubectl_port_forward_reaches_the_pod_port(cluster, kubectl, websockets):
    """true: the WebSocket tunnel (SPDY/3.1+portforward.k8s.io) kubectl tries first; false: plain SPDY."""
    env = {"KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets}
    pod = cluster.store.list("Pod", "default", selector={"app": "web"})[0]["metadata"]["name"]
    for target, remote in ((f"pod/{pod}", 8080), ("svc/web", 80)):
        p, port = _port_forward(cluster, kubectl, target, remote, env)
        try:
            for _ in range(3):  # several connections through one session
                answer = _http_get(port)
                assert answer.startswith("HTTP/1.1 200") and pod in answer, answer
        finally:
            p.terminate()
            _, err = p.communicate(timeout=10)
        assert "an error occurred forwarding" not in err and "Unhandled Error" not in err, err
        if websockets == "true":  # the tunnel was taken, not the fallback
            assert "negotiated protocol: portforward.k8s.io" in err and "fallback" not in err, err
        else:
            assert "tunneling_dialer" not in err, err


def test_kubectl_port_forward_to_a_closed_port_reports_the_error(cluster, kubectl):
    p = subprocess.Popen([KUBECTL, "--context", f"netsim-{cluster.name}", "port-forward", "pod/talker", ":9",
                          "--address", "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=kubectl.env)
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)", p.stdout.readline()).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.settimeout(10)
            assert s.recv(10) == b""  # the forwarded connection is closed
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert "error forwarding port 9 to pod talker" in err and "connection refused" in err.lower(), err


def test_python_client_port_forward(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import portforward
    api = kubernetes.config.new_client_from_config(context=f"netsim-{cluster.name}")
    try:
        core = kubernetes.client.CoreV1Api(api)
        pod = core.list_namespaced_pod("default", label_selector="app=web").items[0].metadata.name
        pf = portforward(core.connect_get_namespaced_pod_portforward, pod, "default", ports="8080")
        s = pf.socket(8080)
        s.settimeout(10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        assert data.startswith(b"HTTP/1.1 200") and pod.encode() in data
        assert pf.error(8080) is None
    finally:
        api.close()


def test_kubectl_exec_over_spdy(kubectl):
    spdy = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    r = kubectl("exec", "talker", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False, extra=spdy)
    assert (r.returncode, r.stdout) == (3, "out\n") and "err" in r.stderr
    r = kubectl("exec", "-i", "talker", "--", "wc", "-c", stdin="four!", extra=spdy)
    assert r.stdout.strip() == "5"
    r = kubectl("exec", "talker", "-v=8", "--", "true", extra=spdy)
    assert "Upgrade: SPDY/3.1" in r.stderr and "X-Stream-Protocol-Version: v4.channel.k8s.io" in r.stderr


@pytest.mark.parametrize("websockets", ["true", "false"])
def test_kubectl_attach_streams_new_output(cluster, kubectl, websockets):
    p = subprocess.Popen([KUBECTL, "--context", f"netsim-{cluster.name}", "attach", "talker"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**kubectl.env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": websockets})
    try:
        seen = [p.stdout.readline(), p.stdout.readline()]
    finally:
        p.terminate()
        p.communicate(timeout=10)
    first, second = (int(line.split()[1]) for line in seen)
    assert second == first + 1 and first > 1  # output as it is written, not the log from its start


def test_streaming_errors_are_status_objects(cluster, kubectl):
    r = kubectl("port-forward", "pod/nope", ":80", check=False, timeout=30)
    assert r.returncode == 1 and 'pods "nope" not found' in r.stderr
    raw = kubectl("get", "--raw", "/api/v1/namespaces/default/pods/talker/portforward", check=False)
    assert raw.returncode == 1 and "Upgrade request required" in raw.stderr
    resources = json.loads(kubectl("get", "--raw", "/api/v1").stdout)["resources"]
    names = {r["name"] for r in resources}
    assert {"pods/portforward", "pods/attach", "pods/exec"} <= names


def test_kubectl_logs_timestamps_and_since(cluster, kubectl):
    """Each line with the time it was written (RFC3339Nano, as the kubelet prefixes it); --since keeps
    only the recent ones (the pod writes a line every 0.3 s)."""
    time.sleep(1.5)
    lines = kubectl("logs", "talker", "--timestamps", "--tail=4").stdout.splitlines()
    assert len(lines) == 4
    stamps = [line.split(" ", 1) for line in lines]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", t) for t, _ in stamps), lines
    assert [rest.split()[0] for _, rest in stamps] == ["line"] * 4
    from netsim.store import parse_time
    times = [parse_time(t) for t, _ in stamps]
    assert times == sorted(times) and 0.1 < times[-1] - times[0] < 3 and abs(time.time() - times[-1]) < 3
    everything = kubectl("logs", "talker").stdout.splitlines()
    recent = kubectl("logs", "talker", "--since=1s").stdout.splitlines()
    assert 1 <= len(recent) <= 5 < len(everything) and recent[-1].startswith("line")
    f = subprocess.Popen([KUBECTL, "--context", f"netsim-{cluster.name}", "logs", "-f", "--timestamps", "--tail=0",
                          "talker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kubectl.env)
    try:
        stamp, rest = f.stdout.readline().split(" ", 1)  # a line appended after the follow began
    finally:
        f.kill()
        f.communicate()
    assert rest.startswith("line") and abs(time.time() - parse_time(stamp)) < 3


def test_kubectl_drain_honours_a_pod_disruption_budget(cluster, kubectl):
    """Last in the module: it cordons the node (uncordoned again on the way out)."""
    import kubernetes
    pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\n" \
          "spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}\n"
    kubectl("apply", "-f", "-", stdin=pdb)

    def status(generation: int) -> dict:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = (cluster.store.get("PodDisruptionBudget", "default", "web") or {}).get("status") or {}
            if got.get("observedGeneration") == generation:
                return got
            time.sleep(0.2)
        raise AssertionError(f"the disruption controller did not observe generation {generation}: {got}")

    st = status(1)
    assert (st["currentHealthy"], st["desiredHealthy"], st["disruptionsAllowed"]) == (1, 1, 0)
    assert kubectl("get", "pdb", "web").stdout.split("\n")[1].split()[1:4] == ["1", "N/A", "0"]
    node = cluster.store.list("Node")[0]["metadata"]["name"]
    pod = cluster.store.list("Pod", "default", selector={"app": "web"})[0]["metadata"]["name"]
    try:
        r = kubectl("drain", node, "--pod-selector", "app=web", "--timeout=4s", check=False)
        assert r.returncode == 1 and "Cannot evict pod as it would violate the pod's disruption budget." in r.stderr
        assert cluster.store.get("Pod", "default", pod) is not None
        api = kubernetes.config.new_client_from_config(context=f"netsim-{cluster.name}")
        try:
            with pytest.raises(kubernetes.client.rest.ApiException) as e:
                kubernetes.client.CoreV1Api(api).create_namespaced_pod_eviction(pod, "default", {
                    "metadata": {"name": pod, "namespace": "default"}})
        finally:
            api.close()
        body = json.loads(e.value.body)
        assert (e.value.status, body["reason"]) == (429, "TooManyRequests")
        assert body["details"]["causes"] == [{"reason": "DisruptionBudget",
                                              "message": "The disruption budget web needs 1 healthy pods and has 1 currently"}]
        kubectl("patch", "pdb", "web", "--type=merge", "-p", '{"spec": {"minAvailable": null, "maxUnavailable": 1}}')
        assert status(2)["disruptionsAllowed"] == 1
        out = kubectl("drain", node, "--pod-selector", "app=web", "--timeout=30s").stdout
        assert f"pod/{pod} evicted" in out
        assert pod in (cluster.store.get("PodDisruptionBudget", "default", "web")["status"].get("disruptedPods") or {}) \
            or cluster.store.get("Pod", "default", pod) is None
    finally:
        kubectl("uncordon", node)
        kubectl("delete", "pdb", "web")


@pytest.mark.parametrize("websockets", ["true", "false"])
def test_an_exec_whose_client_leaves_is_ended(cluster, kubectl, websockets):
    import random
    marker = str(random.randint(10_000_000, 99_999_999))  # a sleep nobody else runs
    p = subprocess.Popen([KUBECTL, "--context", f"netsim-{cluster.name}", "exec", "talker", "--", "sleep", marker],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**kubectl.env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": websockets})

    def running() -> bool:
        return subprocess.run(["pgrep", "-f", f"^sleep {marker}$"], capture_output=True).returncode == 0
    try:
        deadline = time.monotonic() + 15
        while not running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running()
    finally:
        p.kill()
        p.communicate()
    deadline = time.monotonic() + 10
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running()
