"""kubectl habits on a live cluster through the `netsim` CLI: selectors, several kinds, output formats,
watch, label/annotate/set image/edit, and wait."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import NETSIM, live_cluster

pytestmark = pytest.mark.root

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec: {containers: [{name: web, image: example/web:1, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: solo, labels: {app: solo}}
spec: {containers: [{name: c, image: example/solo, ports: [{containerPort: 9090}]}]}
"""


def netsim(name: str, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*NETSIM, *args, "--cluster", name], capture_output=True, text=True, timeout=120, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"netsim {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "kh", manifests=APP) as c:
        yield c


def test_selectors_kinds_and_output_formats(cluster):
    n = cluster.name
    web = netsim(n, "get", "pods", "-l", "app=web", "-o", "name").stdout.split()
    assert len(web) == 2 and all(p.startswith("pod/web-") for p in web)
    assert netsim(n, "get", "pods", "-l", "app in (solo),!missing", "-o", "name").stdout.split() == ["pod/solo"]
    assert netsim(n, "get", "pods", "-l", "app!=web", "-o", "name").stdout.split() == ["pod/solo"]
    node = cluster.store.get("Pod", "default", "solo")["spec"]["nodeName"]
    on_node = netsim(n, "get", "pods", "--field-selector", f"spec.nodeName={node},metadata.name=solo",
                     "-o", "name").stdout.split()
    assert on_node == ["pod/solo"]
    bad = netsim(n, "get", "pods", "--field-selector", "spec.image=x", check=False)
    assert bad.returncode == 2 and '"spec.image" is not a known field selector' in bad.stderr
    # several kinds, `all`, TYPE/NAME
    both = netsim(n, "get", "deploy,svc").stdout
    assert "deployment.apps/web" in both and "service/web" in both
    everything = netsim(n, "get", "all").stdout
    for ref in ("pod/solo", "service/web", "deployment.apps/web", "replicaset.apps/web-"):
        assert ref in everything, everything
    assert netsim(n, "get", "deploy/web", "svc/web", "-o", "name").stdout.split() == \
        ["deployment.apps/web", "service/web"]
    assert "kube-dns" in netsim(n, "get", "svc", "-A").stdout
    # jsonpath and custom columns
    ip = netsim(n, "get", "pod", "solo", "-o", "jsonpath={.status.podIP}").stdout
    assert ip == cluster.store.get("Pod", "default", "solo")["status"]["podIP"]
    names = netsim(n, "get", "pods", "-l", "app=web", "-o",
                   'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}').stdout.split()
    assert sorted(names) == sorted(p.split("/")[1] for p in web)
    cols = netsim(n, "get", "pods", "-o", "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName").stdout
    assert cols.split("\n")[0].split() == ["NAME", "NODE"] and ["solo", node] in [r.split() for r in cols.splitlines()]
    labels = netsim(n, "get", "pods", "solo", "--show-labels").stdout
    assert labels.split("\n")[0].split()[-1] == "LABELS" and "app=solo" in labels
    listed = json.loads(netsim(n, "get", "pods", "-o", "json").stdout)
    assert listed["kind"] == "List" and len(listed["items"]) == 3
    bad = netsim(n, "get", "pods", "-o", "jsonpath={.items[0", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert netsim(n, "get", "pods", "-o", "table", check=False).returncode == 2


def test_label_annotate_change_what_selectors_see(cluster):
    n = cluster.name
    assert netsim(n, "label", "pod", "solo", "team=blue").stdout.strip() == "pod/solo labeled"
    assert netsim(n, "get", "pods", "-l", "team=blue", "-o", "name").stdout.split() == ["pod/solo"]
    clash = netsim(n, "label", "pod/solo", "team=red", check=False)
    assert clash.returncode == 2 and "--overwrite is false" in clash.stderr
    netsim(n, "label", "pod/solo", "team=red", "--overwrite")
    assert cluster.store.get("Pod", "default", "solo")["metadata"]["labels"]["team"] == "red"
    netsim(n, "label", "pod", "solo", "team-")
    assert "team" not in cluster.store.get("Pod", "default", "solo")["metadata"]["labels"]
    bad = netsim(n, "label", "pod", "solo", "bad key=x", check=False)
    assert bad.returncode == 2
    netsim(n, "annotate", "svc", "web", "owner=shop team")
    assert cluster.store.get("Service", "default", "web")["metadata"]["annotations"]["owner"] == "shop team"
    # relabelling a pod into a Service's selector makes it an endpoint
    netsim(n, "label", "pod", "solo", "app=web", "--overwrite")
    netsim(n, "wait", "--for=jsonpath={.status.podIP}", "pod/solo")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        slices = cluster.store.list("EndpointSlice", "default")
        ips = {a for s in slices if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == "web"
               for e in s.get("endpoints") or [] for a in e.get("addresses") or []}
        if cluster.store.get("Pod", "default", "solo")["status"]["podIP"] in ips:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the relabelled pod never became an endpoint of web")
    netsim(n, "label", "pod", "solo", "app=solo", "--overwrite")


def test_set_image_edit_and_wait(cluster, tmp_path):
    n = cluster.name
    out = netsim(n, "set", "image", "deployment/web", "web=example/web:2").stdout.strip()
    assert out == "deployment.apps/web image updated"
    d = cluster.store.get("Deployment", "default", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "example/web:2"
    missing = netsim(n, "set", "image", "deploy/web", "nope=x", check=False)
    assert missing.returncode == 2 and 'unable to find container named "nope"' in missing.stderr
    netsim(n, "rollout", "status", "deploy/web")
    netsim(n, "wait", "--for=condition=Available", "deploy/web", "--timeout", "60s")
    # edit through an editor that changes replicas
    editor = f"{sys.executable} -c \"import sys,re;p=sys.argv[1];t=open(p).read();" \
             f"open(p,'w').write(re.sub(r'replicas: 2', 'replicas: 3', t, count=1))\""
    env = {**__import__("os").environ, "EDITOR": editor}
    assert netsim(n, "edit", "deploy/web", env=env).stdout.strip() == "deployment.apps/web edited"
    assert cluster.store.get("Deployment", "default", "web")["spec"]["replicas"] == 3
    # an edit that breaks validation is refused, nothing changes
    breaker = f"{sys.executable} -c \"import sys;p=sys.argv[1];t=open(p).read();" \
              f"open(p,'w').write(t.replace('replicas: 3', 'replicas: -4', 1))\""
    bad = netsim(n, "edit", "deploy/web", env={**env, "EDITOR": breaker}, check=False)
    assert bad.returncode == 2 and "replicas" in bad.stderr
    assert cluster.store.get("Deployment", "default", "web")["spec"]["replicas"] == 3
    same = netsim(n, "edit", "deploy/web", env={**env, "EDITOR": "true"})
    assert "Edit cancelled, no changes made." in same.stdout
    # wait: conditions on several pods, a timeout, delete
    r = netsim(n, "wait", "--for=condition=Ready", "pods", "-l", "app=web", "--timeout=60s")
    assert r.stdout.count("condition met") == 3
    t = netsim(n, "wait", "--for=condition=Ready=false", "pod/solo", "--timeout=1s", check=False)
    assert t.returncode == 1 and "timed out waiting for the condition on pods/solo" in t.stderr
    netsim(n, "delete", "pod", "solo", "--no-wait")
    assert "condition met" in netsim(n, "wait", "--for=delete", "pod/solo", "--timeout=60s").stdout


def test_watch_prints_changes(cluster):
    n = cluster.name
    proc = subprocess.Popen([*NETSIM, "get", "deploy", "web", "-w", "--watch-seconds", "8", "--cluster", n],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    netsim(n, "scale", "deploy/web", "--replicas", "1")
    out, err = proc.communicate(timeout=30)
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0].split()[0] == "NAME" and len(lines) >= 3, (out, err)
    assert any(line.split()[1] == "1/1" for line in lines[2:]), out


def test_delete_by_selector_all_and_type_name(cluster):
    n = cluster.name
    cluster.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: cm-a, labels: {batch: x}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm-b, labels: {batch: x}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm-keep}
""")
    out = netsim(n, "delete", "cm", "-l", "batch=x").stdout
    assert "cm-a" in out and "cm-b" in out and "cm-keep" not in out
    assert netsim(n, "get", "cm", "-o", "name").stdout.split() == ["configmap/cm-keep"]
    none = netsim(n, "delete", "cm", "-l", "batch=x")
    assert "No resources found" in none.stderr
    both = netsim(n, "delete", "cm", "cm-keep", "-l", "batch=x", check=False)
    assert both.returncode == 2
    netsim(n, "delete", "svc/web", "deploy/web")
    assert cluster.store.get("Service", "default", "web") is None
    assert cluster.store.get("Deployment", "default", "web") is None
    netsim(n, "delete", "cm", "--all")
    assert cluster.store.list("ConfigMap", "default") == []
