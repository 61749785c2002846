"""Real applications, unchanged (tests/data/apps, see its README.md), on every plugin and backend.

One cluster per plugin holds every app, each in its own namespace (`netsim apply -n APP -f ...`, as a
kubectl user would apply them): every pod Running and Ready, every Service port connected from a client pod
through its DNS name (the FQDN and the short name from the same namespace), a process in one of the app's
pods resolving another Service of the app by name (through the pod's resolv.conf), and the NetworkPolicies
that ship with an app (Online Boutique's) enforced where the plugin enforces policy: an allowed path
connects, a denied one times out. Timings are printed (`-s`) per phase.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NETSIM, live_cluster

pytestmark = pytest.mark.root

DATA = Path(__file__).resolve().parents[2] / "data" / "apps"

# app (= its namespace) -> the files `apply -f` gets, relative to the app's directory; one Service of the
# app and the pod (by its `app` label) whose process resolves it.
APPS: dict[str, dict[str, Any]] = {
    "online-boutique": {"files": ["kubernetes-manifests.yaml"], "resolver": ("frontend", "cartservice")},
    "guestbook": {"files": ["guestbook-all-in-one.yaml"], "resolver": ("guestbook", "redis-master")},
    "bookinfo": {"files": ["bookinfo.yaml"], "resolver": ("productpage", "details")},
    "voting-app": {"files": ["k8s-specifications"], "resolver": ("vote", "redis")},
    "aks-store": {"files": ["aks-store-quickstart.yaml"], "resolver": ("order-service", "rabbitmq")},
    "azure-vote": {"files": ["azure-vote-all-in-one-redis.yaml"],
                   "resolver": ("azure-vote-front", "azure-vote-back")},
    # its container's command is ./podinfo, the image's own program: played (netsim.node.pod_env.in_image)
    "podinfo": {"files": ["deployment.yaml", "service.yaml", "hpa.yaml"], "resolver": ("podinfo", "podinfo")},
}
COMBOS = [("flannel", "vxlan"), ("flannel", "host-gw"), ("calico", "vxlan"), ("calico", "direct"),
          ("canal", "vxlan")]
CLIENT = "corpus-client"

# Connects to every (host, port) at once; prints the ones that failed, with why.
CONNECT = """
import json, socket, sys, concurrent.futures as cf
def one(t):
    host, port = t
    try:
        with socket.create_connection((host, port), timeout=4):
            return None
    except OSError as e:
        return [host, port, str(e)]
with cf.ThreadPoolExecutor(32) as ex:
    print(json.dumps([r for r in ex.map(one, json.loads(sys.argv[1])) if r]))
"""
RESOLVE = "import socket, sys; print(socket.gethostbyname(sys.argv[1]))"


def _netsim(cluster: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*NETSIM, *args, "--cluster", cluster], capture_output=True, text=True, timeout=timeout)


def _ready(pod: dict[str, Any]) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


def _not_ready(c, namespaces: set[str]) -> list[str]:
    return [f"{p['metadata']['namespace']}/{p['metadata']['name']} {(p.get('status') or {}).get('phase')} "
            f"{json.dumps((p.get('status') or {}).get('containerStatuses'))[:300]}"
            for p in c.pods() if p["metadata"]["namespace"] in namespaces and not _ready(p)]


def _missing(c, namespaces: set[str]) -> list[str]:
    """Namespaces with fewer pods than their Deployments and StatefulSets ask for (not made yet)."""
    out = []
    for ns in namespaces:
        want = sum(int(w["spec"].get("replicas", 1)) for k in ("Deployment", "StatefulSet") for w in c.get(k, ns))
        have = len([p for p in c.pods(ns) if p["metadata"]["name"] != CLIENT])
        if have < want:
            out.append(f"{ns}: {have} of {want} pods")
    return out


def _wait_ready(c, namespaces: set[str], timeout: float) -> list[str]:
    end = time.monotonic() + timeout
    while True:
        bad = _missing(c, namespaces) + _not_ready(c, namespaces)
        if not bad or time.monotonic() > end:
            return bad
        time.sleep(0.5)


def _pod(c, ns: str, app: str) -> str:
    return next(p["metadata"]["name"] for p in c.pods(ns) if _ready(p)
                and (p["metadata"].get("labels") or {}).get("app") == app)


def _service_targets(c, ns: str) -> list[tuple[str, int]]:
    """Every TCP port of the namespace's Services by FQDN and short name; NodePorts on every node's IP and
    LoadBalancer ingress IPs too (the published fixed nodePorts included)."""
    node_ips = sorted({(p.get("status") or {}).get("hostIP") for p in c.pods()} - {None})
    out = []
    for svc in c.get("Service", ns):
        name = svc["metadata"]["name"]
        lb = [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
              if i.get("ip")]
        for p in svc["spec"].get("ports") or []:
            if p.get("protocol", "TCP") == "TCP":
                out += [(f"{name}.{ns}.svc.cluster.local", int(p["port"])), (name, int(p["port"]))]
                out += [(ip, int(p["nodePort"])) for ip in node_ips if p.get("nodePort")]
                out += [(ip, int(p["port"])) for ip in lb]
    return out


def _build(combo: tuple[str, str], stack: contextlib.ExitStack, lock: threading.Lock) -> Any:
    """One cluster of the plugin and backend holding every app of the corpus, each applied as published
    into its own namespace (with a client pod); waits until every app is Ready. Registers the cluster's removal on `stack` as soon as it exists."""
    plugin, backend = combo
    t0 = time.monotonic()
    spec = {"nodes": 2, "network": {"plugin": plugin, "backend": backend}}
    namespaces = "".join(
        f"---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {a}}}\n---\napiVersion: v1\nkind: Pod\n"
        f"metadata: {{name: {CLIENT}, namespace: {a}}}\nspec: {{containers: [{{name: c, image: busybox}}]}}\n"
        for a in APPS)
    cm = live_cluster(None, "ra", spec, manifests=namespaces, timeout=120)
    c = cm.__enter__()  # removes what it made itself if `up` fails
    with lock:
        stack.push(cm.__exit__)
    c.timings = {"up": time.monotonic() - t0}
    t = time.monotonic()
    for app, info in APPS.items():  # the same loader and checks as `netsim apply -n APP -f FILES`
        c.apply([DATA / app / f for f in info["files"]], namespace=app, wait=False)
    c.not_ready = _wait_ready(c, set(APPS), 120)
    c.timings["apply+ready"] = time.monotonic() - t
    return c


@pytest.fixture(scope="module")
def corpora(kernel):
    """Every plugin's cluster, built at the same time: most of a build is waiting for the apps' own
    readiness probes (adservice: initialDelaySeconds 20, periodSeconds 15), which overlaps."""
    t0 = time.monotonic()
    lock = threading.Lock()
    with contextlib.ExitStack() as stack, cf.ThreadPoolExecutor(len(COMBOS)) as pool:
        futures = {combo: pool.submit(_build, combo, stack, lock) for combo in COMBOS}
        built: dict[tuple[str, str], Any] = {}
        for combo, fut in futures.items():
            try:
                built[combo] = fut.result()
            except Exception as exc:  # noqa: BLE001 - reported by that plugin's tests
                built[combo] = exc
        print(f"\nbuilt {len(COMBOS)} clusters in {time.monotonic() - t0:.1f}s")
        yield built
        for (plugin, backend), c in built.items():
            if not isinstance(c, Exception):
                print(f"{plugin}-{backend}: " + ", ".join(f"{k} {v:.1f}s" for k, v in c.timings.items()))
    print(f"corpus total {time.monotonic() - t0:.1f}s")


@pytest.fixture(params=COMBOS, ids=[f"{p}-{b}" for p, b in COMBOS])
def corpus(corpora, request):
    c = corpora[request.param]
    if isinstance(c, Exception):
        raise c
    return c


def test_every_pod_is_running_and_ready(corpus):
    assert corpus.not_ready == [], "\n".join(corpus.not_ready)
    assert all(len(corpus.pods(app)) > 2 for app in APPS)


def test_every_service_port_answers_by_its_dns_names(corpus):
    """The FQDN and the short name of every Service port, from a client pod of the app's namespace (and the
    NodePorts and LoadBalancer IPs of those that have them)."""
    t = time.monotonic()
    for app in APPS:
        targets = _service_targets(corpus, app)
        assert targets, app
        end = time.monotonic() + 15  # Ready pods become endpoints on kube-proxy's next sync
        while True:
            r = corpus.exec(f"{app}/{CLIENT}", [sys.executable, "-c", CONNECT, json.dumps(targets)], timeout=60)
            assert r.returncode == 0, r.stderr
            failed = json.loads(r.stdout)
            if not failed or time.monotonic() > end:
                break
            targets = [(host, port) for host, port, _ in failed]
            time.sleep(1)
        assert failed == [], f"{app}: {failed}"
    corpus.timings["services"] = time.monotonic() - t


def test_a_process_in_an_app_pod_resolves_another_service_of_the_app(corpus):
    """Through the pod's own resolv.conf (search path of its namespace), as the app's code would; and the
    apps' own init containers, real processes, reached another Service by its short name before their pod
    started (Online Boutique's loadgenerator: wget http://frontend:80 until it answers 200; AKS Store's
    order-service: nc -zv rabbitmq 5672)."""
    for app, info in APPS.items():
        frm, svc = info["resolver"]
        r = corpus.exec(f"{app}/{_pod(corpus, app, frm)}", [sys.executable, "-c", RESOLVE, svc])
        assert r.returncode == 0, f"{app}: {r.stderr}"
        assert r.stdout.strip() == corpus.service(app, svc)["spec"]["clusterIP"], (app, r.stdout)
    # nc's last words differ between busybox (the image's, "open") and the host's netcat ("succeeded!")
    for app, label, init, said in [("online-boutique", "loadgenerator", "frontend-check", ("Frontend is reachable.",)),
                                   ("aks-store", "order-service", "wait-for-rabbitmq", ("open", "succeeded!"))]:
        name = _pod(corpus, app, label)
        (st,) = [x for x in corpus.store.get("Pod", app, name)["status"]["initContainerStatuses"]
                 if x["name"] == init]
        assert st["state"]["terminated"]["exitCode"] == 0, st
        r = _netsim(corpus.name, "logs", "-n", app, name, "-c", init)
        assert r.returncode == 0 and any(line.endswith(said) for line in r.stdout.splitlines()), (app, r.stdout)


def test_the_apps_own_network_policies_are_enforced(corpus):
    """Online Boutique's NetworkPolicies (kustomize/components/network-policies, deny-all plus one allow per
    service), unchanged: allowed callers connect, others time out; flannel warns and enforces nothing, as
    real flannel. Applied last: deny-all also shuts the namespace's client pod out."""
    t = time.monotonic()
    c, ns = corpus, "online-boutique"
    r = _netsim(c.name, "apply", "-n", ns, "-f", str(DATA / ns / "network-policies"))
    assert r.returncode == 0, r.stdout + r.stderr
    cart, redis, front, checkout = (f"{ns}/{_pod(c, ns, a)}"
                                    for a in ("cartservice", "redis-cart", "frontend", "checkoutservice"))
    allowed = [(front, cart, 7070), (checkout, cart, 7070), (cart, redis, 6379)]
    denied = [(f"{ns}/{CLIENT}", cart, 7070), (front, redis, 6379)]
    for frm, to, port in allowed + denied:
        (res,) = c.probe(frm, to, [port], timeout=1.5)
        enforced = c.enforces_policy and (frm, to, port) in denied
        assert res.outcome == ("timeout" if enforced else "connected"), (frm, to, port, res)
    if not c.enforces_policy:
        assert "does not enforce NetworkPolicy" in r.stderr + r.stdout
    corpus.timings["policies"] = time.monotonic() - t
