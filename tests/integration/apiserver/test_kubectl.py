"""The real kubectl and the official Python client against a live cluster's API endpoint.

One 1-node cluster for the module; kubectl runs with the test session's KUBECONFIG (tests/conftest.py
points it at a temporary file) and a HOME of its own (its discovery cache)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest
import yaml

from tests.conftest import NETSIM, live_cluster

pytestmark = pytest.mark.root
KUBECTL = shutil.which("kubectl")

APP = {
    "web.yaml": """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
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
""",
    "config.yaml": """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
""",
}


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "api", {"nodes": 1}) as c:
        yield c


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (scripts/setup.sh installs one)")
    home = tmp_path_factory.mktemp("kubectl-home")
    env = {**os.environ, "HOME": str(home)}

    def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run([KUBECTL, "--context", f"netsim-{cluster.name}", *args], capture_output=True,
                           text=True, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r
    run.env = env  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def client(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    api = kubernetes.config.new_client_from_config(context=f"netsim-{cluster.name}")
    yield kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    api.close()


def test_kubectl_apply_rollout_and_output_formats(cluster, kubectl, tmp_path):
    for name, text in APP.items():
        (tmp_path / name).write_text(text)
    out = kubectl("apply", "-f", str(tmp_path)).stdout
    assert "deployment.apps/web created" in out and "configmap/settings created" in out
    assert "unchanged" in kubectl("apply", "-f", str(tmp_path)).stdout
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", "--timeout=60s").stdout
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:3] == ["NAME", "READY", "STATUS"] and "NODE" in wide[0] and "Running" in wide[1]
    dep = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 1 and dep["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"]
    assert yaml.safe_load(kubectl("get", "cm", "settings", "-o", "yaml").stdout)["data"] == {"mode": "fast"}
    assert kubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout.startswith("10.96.")
    # one source of truth: netsim get and the API show the same object at the same version
    mine = json.loads(subprocess.run([*NETSIM, "get", "deploy", "web", "-o", "json", "--cluster", cluster.name],
                                     capture_output=True, text=True, check=True).stdout)
    mine = mine["items"][0] if "items" in mine else mine
    api = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert (mine["metadata"]["uid"], mine["metadata"]["resourceVersion"]) == \
        (api["metadata"]["uid"], api["metadata"]["resourceVersion"])
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    shown = subprocess.run([*NETSIM, "status", "--cluster", cluster.name], capture_output=True, text=True).stdout
    assert f"kubectl context netsim-{cluster.name}" in shown
    resources = kubectl("api-resources").stdout
    assert any(line.split()[0] == "deployments" and "apps/v1" in line for line in resources.splitlines())


def test_kubectl_scale_label_wait_describe_events_delete(cluster, kubectl):
    ev = subprocess.Popen([KUBECTL, "--context", f"netsim-{cluster.name}", "get", "events", "-w", "--watch-only",
                           "--request-timeout=4s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=kubectl.env)
    time.sleep(1)
    assert "scaled" in kubectl("scale", "deploy/web", "--replicas=2").stdout
    assert cluster.store.get("Deployment", "default", "web")["spec"]["replicas"] == 2
    kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    watched, _ = ev.communicate(timeout=30)
    assert "Scaled up replica set" in watched and "SuccessfulCreate" in watched  # events as they happen
    kubectl("set", "image", "deploy/web", "web=example/web:2")
    kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    history = kubectl("rollout", "history", "deploy/web").stdout.split()
    assert history[history.index("REVISION") + 2:][:3] == ["1", "<none>", "2"]
    assert "rolled back" in kubectl("rollout", "undo", "deploy/web").stdout
    kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    dep = cluster.store.get("Deployment", "default", "web")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "example/web:1"
    out = kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=60s").stdout
    assert out.count("condition met") == 2
    assert "labeled" in kubectl("label", "deploy", "web", "tier=front").stdout
    assert cluster.store.get("Deployment", "default", "web")["metadata"]["labels"]["tier"] == "front"
    described = kubectl("describe", "deploy", "web").stdout
    assert "Replicas:" in described and "ScalingReplicaSet" in described
    events = kubectl("get", "events").stdout
    assert "ScalingReplicaSet" in events and "deployment/web" in events
    assert "deleted" in kubectl("delete", "deploy", "web").stdout
    kubectl("wait", "--for=delete", "pod", "-l", "app=web", "--timeout=60s")
    assert kubectl("get", "deploy", "web", check=False).returncode == 1


def test_kubectl_create_sends_protobuf_for_config_kinds(cluster, kubectl):
    kubectl("create", "namespace", "made")
    kubectl("create", "configmap", "made", "-n", "made", "--from-literal=k=v")
    kubectl("create", "secret", "generic", "made", "-n", "made", "--from-literal=user=admin")
    assert cluster.store.get("ConfigMap", "made", "made")["data"] == {"k": "v"}
    assert cluster.store.get("Secret", "made", "made")["type"] == "Opaque"
    kubectl("delete", "namespace", "made")


def test_kubectl_get_watch_streams_changes(cluster, kubectl, tmp_path):
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\n")
    w = subprocess.Popen([KUBECTL, "--context", f"netsim-{cluster.name}", "get", "configmaps", "-w",
                          "--request-timeout=4s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=kubectl.env)
    try:
        time.sleep(1.5)
        kubectl("apply", "-f", str(tmp_path / "cm.yaml"))
        out, _ = w.communicate(timeout=15)
    finally:
        w.kill()
    assert "settings" in out and "watched" in out


def test_python_client_list_watch_create_patch_delete(cluster, client):
    import kubernetes
    core, apps = client
    listed = core.list_namespaced_config_map("default")
    rv = listed.metadata.resource_version
    made = core.create_namespaced_config_map("default", {"metadata": {"name": "py"}, "data": {"a": "1"}})
    patched = core.patch_namespaced_config_map("py", "default", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    seen = []
    w = kubernetes.watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5):
        if ev["object"].metadata.name == "py":
            seen.append((ev["type"], ev["object"].metadata.resource_version))
        if len(seen) == 2:
            w.stop()
    assert seen == [("ADDED", made.metadata.resource_version), ("MODIFIED", patched.metadata.resource_version)]
    core.delete_namespaced_config_map("py", "default")
    assert cluster.store.get("ConfigMap", "default", "py") is None
    assert {d.metadata.name for d in apps.list_deployment_for_all_namespaces().items} >= {"coredns"}


def test_error_paths_are_status_objects(cluster, client):
    import kubernetes
    core, _ = client
    exc = kubernetes.client.rest.ApiException

    def status(fn) -> dict:
        with pytest.raises(exc) as e:
            fn()
        body = json.loads(e.value.body)
        assert body["kind"] == "Status" and body["code"] == e.value.status
        return body

    assert status(lambda: core.read_namespaced_config_map("nope", "default"))["reason"] == "NotFound"
    core.create_namespaced_config_map("default", {"metadata": {"name": "twice"}})
    assert status(lambda: core.create_namespaced_config_map("default", {"metadata": {"name": "twice"}}))[
        "reason"] == "AlreadyExists"
    stale = core.read_namespaced_config_map("twice", "default")
    core.patch_namespaced_config_map("twice", "default", {"data": {"x": "1"}})
    conflict = status(lambda: core.replace_namespaced_config_map("twice", "default", stale))
    assert conflict["reason"] == "Conflict" and conflict["code"] == 409
    bad = {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 70000}]}}
    invalid = status(lambda: core.create_namespaced_service("default", bad))
    assert invalid["code"] == 422 and invalid["details"]["causes"][0]["field"].startswith("spec.ports[0]")
    # the same input through `netsim apply` is refused naming the same field
    r = subprocess.run([*NETSIM, "apply", "-f", "-", "--cluster", cluster.name], capture_output=True, text=True,
                       input=yaml.safe_dump({"apiVersion": "v1", "kind": "Service", **bad}))
    assert r.returncode == 2 and invalid["details"]["causes"][0]["field"] in r.stderr
    # 410: a watch from a version the change log no longer has
    old = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("twice", "default", {"data": {"y": "2"}})
    core.patch_namespaced_config_map("twice", "default", {"data": {"z": "3"}})  # two writes: one is compacted
    cluster.store.compact(cluster.store.current_rv())
    with pytest.raises(exc) as e:
        for _ in kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old,
                                                 timeout_seconds=3):
            pass
    assert e.value.status == 410


def test_requests_without_credentials_are_401(cluster):
    from netsim.apiserver import endpoint
    ep = endpoint.load(cluster.name)
    ctx = ssl.create_default_context(cafile=ep.pki.ca_crt)
    for headers in ("", "Authorization: Bearer wrong\r\n"):
        with socket.create_connection(("127.0.0.1", ep.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(f"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 401"), head
        assert json.loads(body) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    # the token made at `up` is accepted
    with open(ep.pki.token) as f:
        token = f.read().strip()
    with socket.create_connection(("127.0.0.1", ep.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(f"GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                  .encode())
        assert s.recv(65536).startswith(b"HTTP/1.1 200")


def test_kubectl_logs_and_exec(cluster, kubectl, tmp_path):
    (tmp_path / "logger.yaml").write_text("""
apiVersion: v1
kind: Pod
metadata: {name: logger}
spec:
  containers:
  - name: c
    image: busybox
    command: ["/bin/sh", "-c", "echo first; echo second; while true; do sleep 0.3; echo tick; done"]
""")
    kubectl("apply", "-f", str(tmp_path / "logger.yaml"))
    kubectl("wait", "--for=condition=Ready", "pod/logger", "--timeout=60s")
    deadline = time.monotonic() + 10
    while "second" not in kubectl("logs", "logger").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kubectl("logs", "logger").stdout.startswith("first\nsecond\n")
    assert kubectl("logs", "logger", "--tail=1").stdout.count("\n") == 1
    f = subprocess.Popen([KUBECTL, "--context", f"netsim-{cluster.name}", "logs", "-f", "logger", "--tail=0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kubectl.env)
    try:
        assert f.stdout.readline() == "tick\n"  # appended after the follow began
    finally:
        f.kill()
        f.communicate()
    r = kubectl("logs", "logger", "--previous", check=False)
    assert r.returncode == 1 and 'previous terminated container "c" in pod "logger" not found' in r.stderr
    # kubectl exec over WebSocket (v5.channel.k8s.io): streams, stdin to EOF, the exit code
    r = kubectl("exec", "logger", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (r.returncode, r.stdout) == (3, "out\n") and "err" in r.stderr
    r = subprocess.run([KUBECTL, "--context", f"netsim-{cluster.name}", "exec", "-i", "logger", "--", "wc", "-c"],
                       input="four", capture_output=True, text=True, timeout=30, env=kubectl.env)
    assert (r.returncode, r.stdout.strip()) == (0, "4")
    kubectl("delete", "pod", "logger", "--grace-period=0", "--force")


def test_kubectl_server_side_apply_conflicts_and_diff(cluster, kubectl, tmp_path):
    doc = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa}
spec:
  replicas: 1
  selector: {matchLabels: {app: ssa}}
  template:
    metadata: {labels: {app: ssa}}
    spec: {containers: [{name: c, image: example/ssa:TAG}]}
"""
    f = tmp_path / "ssa.yaml"
    f.write_text(doc.replace("TAG", "1"))
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", str(f)).stdout
    kubectl("scale", "deploy/ssa", "--replicas=0")  # kubectl now owns spec.replicas through /scale
    f.write_text(doc.replace("TAG", "2"))
    assert "image: example/ssa:2" in kubectl("diff", "-f", str(f), check=False).stdout  # server-side dry run
    r = kubectl("apply", "--server-side", "-f", str(f), check=False)
    assert r.returncode == 1 and "Apply failed with 1 conflict" in r.stderr and ".spec.replicas" in r.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))
    dep = cluster.store.get("Deployment", "default", "ssa")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "example/ssa:2"
    assert {e["manager"] for e in dep["metadata"]["managedFields"]} >= {"kubectl"}
    kubectl("delete", "-f", str(f))


def test_kubectl_cordon_taint_and_eviction(cluster, kubectl, client):
    import kubernetes
    node = cluster.store.list("Node")[0]["metadata"]["name"]
    kubectl("cordon", node)
    assert "SchedulingDisabled" in kubectl("get", "node", node).stdout
    kubectl("taint", "node", node, "dedicated=x:NoSchedule")
    assert cluster.store.get("Node", None, node)["spec"]["taints"] == [
        {"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    kubectl("taint", "node", node, "dedicated-")
    kubectl("uncordon", node)
    assert not cluster.store.get("Node", None, node)["spec"].get("unschedulable")
    core, _ = client
    core.create_namespaced_pod("default", {"metadata": {"name": "evictme"},
                                           "spec": {"containers": [{"name": "c", "image": "x"}]}})
    kubectl("wait", "--for=condition=Ready", "pod/evictme", "--timeout=60s")
    core.create_namespaced_pod_eviction("evictme", "default", kubernetes.client.V1Eviction(
        metadata=kubernetes.client.V1ObjectMeta(name="evictme", namespace="default")))
    kubectl("wait", "--for=delete", "pod/evictme", "--timeout=60s")


def test_kubectl_explain_below_the_top_level(kubectl):
    out = kubectl("explain", "deployment.spec.strategy").stdout
    assert "KIND:       Deployment" in out and "FIELD: strategy <DeploymentStrategy>" in out
    assert "rollingUpdate\t<RollingUpdateDeployment>" in out and "Type of deployment" in out
    out = kubectl("explain", "pod.spec.containers.readinessProbe.httpGet").stdout
    assert "FIELD: httpGet <HTTPGetAction>" in out and "path\t<string>" in out and "port\t<Object> -required-" in out
    r = kubectl("explain", "pod.spec.nosuchfield", check=False)
    assert r.returncode == 1 and 'field "nosuchfield" does not exist' in r.stderr


def test_python_client_lists_at_a_past_resource_version(cluster, client):
    core, _ = client
    before = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "later"}})
    try:
        past = core.list_namespaced_config_map("default", resource_version=before, resource_version_match="Exact")
        assert past.metadata.resource_version == before
        assert "later" not in {c.metadata.name for c in past.items}
        assert "later" in {c.metadata.name for c in core.list_namespaced_config_map("default").items}
    finally:
        core.delete_namespaced_config_map("later", "default")


def test_knative_services_are_served_at_their_own_group(cluster, kubectl, tmp_path):
    """Every kind the store holds is served: Knative's Service (stored as KnativeService) at
    /apis/serving.knative.dev/v1, by kubectl's short name, with kn's columns, written through the API."""
    f = tmp_path / "ksvc.yaml"
    f.write_text("""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  template:
    spec:
      containers: [{image: hello, ports: [{containerPort: 8080}]}]
""")
    assert "service.serving.knative.dev/hello created" in kubectl("apply", "-f", str(f)).stdout
    try:
        rows = kubectl("api-resources", "--api-group=serving.knative.dev", "--no-headers").stdout.split()
        assert rows[:4] == ["services", "kservice,ksvc", "serving.knative.dev/v1", "true"], rows
        got = json.loads(kubectl("get", "services.serving.knative.dev", "hello", "-o", "json").stdout)
        assert (got["apiVersion"], got["kind"]) == ("serving.knative.dev/v1", "Service")
        assert kubectl("get", "ksvc").stdout.split()[:6] == ["NAME", "URL", "LATESTCREATED", "LATESTREADY",
                                                            "READY", "REASON"]
        # the core Service of the same name (the controller's) is another object
        assert json.loads(kubectl("get", "service", "hello", "-o", "json").stdout)["apiVersion"] == "v1"
    finally:
        kubectl("delete", "ksvc", "hello")
    assert "hello" not in kubectl("get", "ksvc").stdout
