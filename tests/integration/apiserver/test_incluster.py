"""In-cluster clients: a container process using the official Python client with `load_incluster_config()`
lists pods through the `kubernetes` Service (ClusterIP -> kube-proxy DNAT -> the first node's IP:6443,
served inside that node's namespace), with the ServiceAccount token, ca.crt and namespace the kubelet
mounted; without the token it gets 401. On calico, a default-deny egress policy cuts it off and an egress
rule to the node IP's port 6443 lets it through again, as on a real cluster."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from netsim import naming
from netsim.daemon import health_path
from tests.conftest import live_cluster

pytestmark = pytest.mark.root

# Runs in the container: every half second, one request without a token (urllib, verifying with ca.crt)
# and one LIST through the official client configured in-cluster, each on a new connection; one line each.
SCRIPT = r"""
import json, os, ssl, sys, time, urllib.error, urllib.request
from kubernetes import client, config
SA = "/var/run/secrets/kubernetes.io/serviceaccount"
print("namespace", open(SA + "/namespace").read(), "host", os.environ["KUBERNETES_SERVICE_HOST"],
      os.environ["KUBERNETES_SERVICE_PORT"], flush=True)
config.load_incluster_config()
url = "https://%s:%s/api/v1/namespaces/default/pods" % (os.environ["KUBERNETES_SERVICE_HOST"],
                                                        os.environ["KUBERNETES_SERVICE_PORT_HTTPS"])
ctx = ssl.create_default_context(cafile=SA + "/ca.crt")
while True:
    try:
        urllib.request.urlopen(url, context=ctx, timeout=2)
        print("ANON 200", flush=True)
    except urllib.error.HTTPError as e:
        print("ANON", e.code, json.load(e)["reason"], flush=True)
    except Exception as e:
        print("ANON fail", type(e).__name__, flush=True)
    try:  # a new connection each time: calico lets established ones through whatever the policy says
        with client.ApiClient() as c:
            pods = client.CoreV1Api(c).list_pod_for_all_namespaces(_request_timeout=2)
        print("LIST ok", " ".join(sorted(p.metadata.namespace + "/" + p.metadata.name for p in pods.items)),
              flush=True)
    except Exception as e:
        print("LIST fail", type(e).__name__, flush=True)
    time.sleep(0.5)
"""

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lister", "namespace": "default",
                                                        "labels": {"app": "lister"}},
       # root: the test venv's interpreter may not be executable by the default uid 65534
       # on the second node: its traffic crosses the node network to the first node's IP
       "spec": {"securityContext": {"runAsUser": 0}, "nodeName": "node-2",
                "containers": [{"name": "py", "image": "python", "command": [sys.executable, "-c", SCRIPT]}]}}
NO_TOKEN = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "quiet", "namespace": "default"},
            "spec": {"automountServiceAccountToken": False,
                     "containers": [{"name": "sh", "image": "busybox", "command": [
                         "sh", "-c", "ls /var/run/secrets/kubernetes.io/serviceaccount 2>&1; echo done; sleep 3600"]}]}}


def _log(cluster: str, pod: str, container: str) -> list[str]:
    try:
        with open(naming.container_log(cluster, "default", pod, container)) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _wait_line(cluster: str, pod: str, container: str, start: int, pred, timeout: float = 20) -> str:
    """The first line after the first `start` lines that satisfies `pred`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in _log(cluster, pod, container)[start:]:
            if pred(line):
                return line
        time.sleep(0.3)
    raise AssertionError(f"no matching line in {pod}'s log:\n" + "\n".join(_log(cluster, pod, container)[-15:]))


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "inc", {"nodes": 2, "network": {"plugin": "calico", "backend": "direct"}}) as c:
        yield c


def test_in_cluster_client_lists_pods_and_policy_applies(cluster):
    name = cluster.name
    node_ip = next(n for n in cluster.get("Node") if n["metadata"]["name"] == "node-1")["status"]["addresses"][0]["address"]
    sl = next(s for s in cluster.get("EndpointSlice", "default") if s["metadata"]["name"] == "kubernetes")
    assert sl["endpoints"][0]["addresses"] == [node_ip] and sl["ports"][0]["port"] == 6443
    cluster.apply([POD, NO_TOKEN])
    first = _wait_line(name, "lister", "py", 0, lambda s: s.startswith("namespace"))
    assert first == "namespace default host 10.96.0.1 443"
    _wait_line(name, "lister", "py", 0, lambda s: s.startswith("ANON 401 Unauthorized"))
    listed = _wait_line(name, "lister", "py", 0, lambda s: s.startswith("LIST ok"))
    assert "default/lister" in listed.split() and "default/quiet" in listed.split()
    quiet = _wait_line(name, "quiet", "sh", 0, lambda s: s == "done")
    assert "token" not in " ".join(_log(name, "quiet", "sh")) and quiet == "done"
    # NetworkPolicy applies to it: egress denied, then allowed to the node IP's port 6443 only
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-egress", "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": "lister"}}, "policyTypes": ["Egress"]}}
    cluster.apply(deny)
    n = len(_log(name, "lister", "py"))
    _wait_line(name, "lister", "py", n, lambda s: s.startswith("LIST fail"))
    allow = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "allow-apiserver", "namespace": "default"},
             "spec": {"podSelector": {"matchLabels": {"app": "lister"}}, "policyTypes": ["Egress"],
                      "egress": [{"to": [{"ipBlock": {"cidr": f"{node_ip}/32"}}],
                                  "ports": [{"protocol": "TCP", "port": 6443}]}]}}
    cluster.apply(allow)
    n = len(_log(name, "lister", "py"))
    _wait_line(name, "lister", "py", n, lambda s: s.startswith("LIST ok"))
    assert os.path.exists(os.path.join(naming.state_dir(name), "pki", "sa.key"))
    with open(health_path(name)) as f:
        api = json.load(f)["components"]["apiserver"]
    assert api["inCluster"] == {"address": f"{node_ip}:6443", "state": "running"}


def test_in_cluster_client_on_flannel(kernel):
    """The default plugin: the pod's traffic to the node IP leaves through cni0 into the node's namespace."""
    with live_cluster(kernel, "incf", {"nodes": 1}) as c:
        c.apply(POD | {"spec": {**POD["spec"], "nodeName": "node-1"}})
        listed = _wait_line(c.name, "lister", "py", 0, lambda s: s.startswith("LIST ok"))
        assert "default/lister" in listed.split()
        _wait_line(c.name, "lister", "py", 0, lambda s: s.startswith("ANON 401 Unauthorized"))
