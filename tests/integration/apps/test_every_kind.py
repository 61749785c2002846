"""Real applications' manifests go in unchanged: every built-in kind, CRDs and their objects, Lists,
directories and stdin, on a live cluster through the `netsim` CLI, as kubectl users would type it."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import NETSIM, live_cluster

pytestmark = pytest.mark.root

APP = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: cart}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cart-config}
data: {REDIS_ADDR: "redis:6379", MODE: prod}
---
apiVersion: v1
kind: Secret
metadata: {name: cart-secret}
stringData: {password: hunter2}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: cart}
spec: {minAvailable: 1, selector: {matchLabels: {app: cart}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  rules:
  - host: shop.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: cart, port: {number: 80}}}}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "cart:reader"}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true}]
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart}
spec:
  replicas: 2
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      serviceAccountName: cart
      containers: [{name: cart, image: example/cart, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: cart}
spec: {selector: {app: cart}, ports: [{port: 80, targetPort: 8080}]}
"""


def netsim(name: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*NETSIM, *args, "--cluster", name], input=stdin, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "k") as c:
        yield c


def test_a_real_app_with_every_kind_applies_and_its_objects_are_listed(cluster, tmp_path):
    f = tmp_path / "app.yaml"
    f.write_text(APP)
    r = netsim(cluster.name, "apply", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert "configmap/cart-config created" in r.stdout and "widget/w1 created" in r.stdout
    notes = [line for line in r.stderr.splitlines() if line.startswith("Note:")]
    assert len(notes) == 1, r.stderr
    for ref in ("ServiceAccount default/cart", "ConfigMap default/cart-config", "PodDisruptionBudget default/cart",
                "Ingress default/shop", "ClusterRole cart:reader", "CustomResourceDefinition widgets.example.com",
                "Widget default/w1"):
        assert ref in notes[0]
    assert "Deployment" not in notes[0] and "Service default/cart" not in notes[0]
    # the emulated part runs: both replicas Ready behind the Service
    pods = [p for p in cluster.pods("default") if p["metadata"]["name"].startswith("cart-")]
    assert len(pods) == 2 and all(p.get("status", {}).get("podIP") for p in pods)

    out = netsim(cluster.name, "get", "cm").stdout
    assert out.split("\n")[0].split() == ["NAME", "DATA", "AGE"] and "cart-config   2" in out
    assert "cart-secret   Opaque   1" in netsim(cluster.name, "get", "secrets").stdout
    assert "w1" in netsim(cluster.name, "get", "widgets").stdout
    assert "w1" in netsim(cluster.name, "get", "wd").stdout
    assert "cart:reader" in netsim(cluster.name, "get", "clusterroles").stdout
    got = json.loads(netsim(cluster.name, "get", "widget", "w1", "-o", "json").stdout)
    assert got["spec"] == {"size": 3} and got["metadata"]["resourceVersion"]
    d = netsim(cluster.name, "describe", "ingress", "shop")
    assert d.returncode == 0 and "shop.example.com" in d.stdout

    # delete works on them, by name and by file
    assert netsim(cluster.name, "delete", "pdb", "cart").returncode == 0
    assert netsim(cluster.name, "get", "pdb", "cart").returncode != 0
    assert netsim(cluster.name, "delete", "wd", "w1").returncode == 0
    assert "No resources found" in netsim(cluster.name, "get", "widgets").stderr


def test_an_unknown_kind_is_refused_with_the_api_servers_words_and_nothing_is_applied(cluster, tmp_path):
    f = tmp_path / "mixed.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: before-gadget}\n---\n"
                 "apiVersion: example.org/v1\nkind: Gadget\nmetadata: {name: g}\n")
    r = netsim(cluster.name, "apply", "-f", str(f))
    assert r.returncode == 2
    assert r.stderr.strip().endswith('Gadget g: field kind: no matches for kind "Gadget" in version '
                                     '"example.org/v1"; ensure CRDs are installed first'), r.stderr
    assert str(f) in r.stderr and "Traceback" not in r.stderr
    assert netsim(cluster.name, "get", "cm", "before-gadget").returncode != 0

    r = netsim(cluster.name, "apply", "--skip-unknown", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert "Warning" in r.stderr and "Gadget" in r.stderr
    assert netsim(cluster.name, "get", "cm", "before-gadget").returncode == 0
    assert cluster.store.get("Gadget", "default", "g") is not None


def test_apply_into_a_namespace_as_kubectl_apply_n(cluster, tmp_path):
    """`apply -n NS`: objects naming no namespace land in NS (made if missing), cluster-scoped ones are left
    alone; an object naming another namespace refuses the whole file (exit 2, kubectl's words)."""
    f = tmp_path / "app.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: in-ns}\n---\n"
                 "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: ns-reader}\n"
                 "rules: []\n")
    r = netsim(cluster.name, "apply", "-n", "shop", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert cluster.store.get("ConfigMap", "shop", "in-ns") is not None
    assert cluster.store.get("ConfigMap", "default", "in-ns") is None
    assert cluster.store.get("ClusterRole", None, "ns-reader") is not None
    g = tmp_path / "other.yaml"
    g.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\n"
                 "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere, namespace: prod}\n")
    r = netsim(cluster.name, "apply", "--namespace", "shop", "-f", str(g))
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.startswith(f"netsim: {g}") or str(g) in r.stderr.splitlines()[0], r.stderr
    assert ('ConfigMap prod/elsewhere: field metadata.namespace: the namespace from the provided object "prod" '
            'does not match the namespace "shop"') in r.stderr
    assert cluster.store.get("ConfigMap", "shop", "first") is None
    # delete -f with -n finds them where apply -n put them
    r = netsim(cluster.name, "delete", "-n", "shop", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert cluster.store.get("ConfigMap", "shop", "in-ns") is None
    assert cluster.store.get("ClusterRole", None, "ns-reader") is None
    r = netsim(cluster.name, "delete", "-n", "shop", "-f", str(g))
    assert r.returncode == 2 and "does not match the namespace" in r.stderr, r.stderr


def test_lists_directories_recursion_and_stdin(cluster, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "top.yaml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: list-a}}\n"
        "- {apiVersion: v1, kind: ServiceAccount, metadata: {name: list-b}}\n")
    (tmp_path / "sub" / "deep.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\n")
    r = netsim(cluster.name, "apply", "-f", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "configmap/list-a created" in r.stdout and "serviceaccount/list-b created" in r.stdout
    assert "deep" not in r.stdout  # kubectl recurses only with -R
    r = netsim(cluster.name, "apply", "-R", "-f", str(tmp_path))
    assert "configmap/deep created" in r.stdout, r.stderr
    r = netsim(cluster.name, "apply", "-f", "-", stdin="apiVersion: v1\nkind: Secret\nmetadata: {name: piped}\n")
    assert "secret/piped created" in r.stdout, r.stderr
    r = netsim(cluster.name, "delete", "-R", "-f", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert netsim(cluster.name, "get", "cm", "deep").returncode != 0


UNDECLARED = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: quiet}
spec:
  replicas: 1
  selector: {matchLabels: {app: quiet}}
  template:
    metadata: {labels: {app: quiet}}
    spec: {containers: [{name: quiet, image: example/quiet:1}]}
---
apiVersion: v1
kind: Service
metadata: {name: quiet-a}
spec: {selector: {app: quiet}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: caller}
spec: {containers: [{name: c, image: busybox}]}
"""


def test_played_pods_serve_the_undeclared_target_ports_of_their_services(cluster):
    """Real images listen on ports they never declare; a Service's numeric targetPort names one. A pod of
    played containers serves them, and follows Services as they come and go."""
    c = cluster
    c.apply(UNDECLARED)
    quiet = next(p for p in c.pods("default") if p["metadata"]["name"].startswith("quiet-"))
    ip = quiet["status"]["podIP"]

    def outcome(to: str, port: int | None = None) -> str:
        end = time.monotonic() + 10  # the daemon's next pass serves a new Service's port
        while True:
            (res,) = c.probe("default/caller", to, [port] if port else None, timeout=1.0)
            if res.outcome == "connected" or time.monotonic() > end:
                return res.outcome
            time.sleep(0.3)

    assert outcome("svc/default/quiet-a") == "connected"
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: quiet-b}\n"
            "spec: {selector: {app: quiet}, ports: [{port: 81, targetPort: 9090}]}\n")
    assert outcome("svc/default/quiet-b") == "connected"
    c.delete("Service", "quiet-a")
    end = time.monotonic() + 10
    while c.probe("default/caller", f"{ip}:8080", timeout=1.0)[0].outcome == "connected" \
            and time.monotonic() < end:
        time.sleep(0.3)
    assert c.probe("default/caller", f"{ip}:8080", timeout=1.0)[0].outcome == "refused"
    assert c.probe("default/caller", f"{ip}:9090", timeout=1.0)[0].outcome == "connected"
