"""The API endpoint against the store it serves, in one run (no cluster needed; any user).

A store file with N pods (as the daemon writes them: spec, status, conditions) and the API server on a free
loopback port with a PKI of its own, in a temporary directory. Measured, each as the median of several runs:
- LIST of the N pods through the API (HTTPS, one kept-alive connection, the JSON body read whole) and as
  a Table (what `kubectl get pods` asks for), against `Store.list` of the same pods: the floor;
- a watch event's latency: from a write through another store connection (as the daemon's) to the event
  read by a client watching over HTTPS;
- `kubectl get pods` on the N pods (wall time of the whole command, discovery cached), if kubectl exists.
Targets (issue #13): `kubectl get pods` on 1000 pods under 0.5 s.

    .venv/bin/python -m benchmarks.bench_apiserver [N]
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import yaml

from netsim.apiserver import certs, kubeconfig
from netsim.apiserver.endpoint import Endpoint, free_port
from netsim.apiserver.server import ApiServer
from netsim.controlplane.admission import admit
from netsim.daemon import bootstrap_objects, normalise
from netsim.model.cluster import default_cluster
from netsim.store import SQLiteStore, rfc3339

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def pod(i: int) -> dict:
    now = rfc3339(time.time())
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"bench-{i:05d}", "namespace": "default", "labels": {"app": "bench"}},
            "spec": {"nodeName": f"node-{i % 50}", "containers": [{"name": "web", "image": "nginx",
                                                                   "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": f"10.244.{i // 250}.{i % 250 + 2}", "startTime": now,
                       "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                                      for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                       "containerStatuses": [{"name": "web", "image": "nginx", "imageID": "", "ready": True,
                                              "restartCount": 0, "state": {"running": {"startedAt": now}}}]}}


def median_ms(fn, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def main(n: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="netsim-bench-api-")
    try:
        spec = default_cluster("bench")
        db = os.path.join(tmp, "store.db")
        store = SQLiteStore(db)
        with store.transaction() as tx:
            tx.apply(admit(normalise(bootstrap_objects(spec), "<bootstrap>"), spec, [], []))
            for i in range(n):
                tx.create(pod(i))
        pki = certs.make_pki(os.path.join(tmp, "pki"), service_ip="10.96.0.1", dns_domain="cluster.local")
        ep = Endpoint("bench", free_port(), pki)
        srv = ApiServer(ep, spec, db)
        srv.start()
        ctx = ssl.create_default_context(cafile=pki.ca_crt)
        ctx.load_cert_chain(pki.admin_crt, pki.admin_key)
        conn = http.client.HTTPSConnection("127.0.0.1", ep.port, context=ctx, timeout=30)

        def api_list(accept: str = "application/json") -> None:
            conn.request("GET", "/api/v1/namespaces/default/pods", headers={"Accept": accept})
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, body[:200]

        out: dict = {"pods": n}
        out["store_list_ms"] = median_ms(lambda: store.list("Pod", "default"))
        out["api_list_ms"] = median_ms(api_list)
        out["api_table_ms"] = median_ms(lambda: api_list(TABLE))
        out["list_ratio"] = round(out["api_list_ms"] / out["store_list_ms"], 2)

        # watch latency: write through another connection, time until the client reads the event
        rv = store.current_rv()
        wconn = http.client.HTTPSConnection("127.0.0.1", ep.port, context=ctx, timeout=30)
        wconn.request("GET", f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
                             "&timeoutSeconds=60")
        resp = wconn.getresponse()
        seen: dict[str, float] = {}
        done = threading.Event()

        def reader() -> None:
            while not done.is_set():
                line = resp.fp.readline()
                if not line:
                    return
                if line.strip() and not line.strip().isalnum():  # skip chunk-size lines
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    seen[ev["object"]["metadata"]["name"]] = time.perf_counter()

        threading.Thread(target=reader, daemon=True).start()
        writer = SQLiteStore(db)
        lat = []
        for i in range(20):
            name = f"w{i}"
            t0 = time.perf_counter()
            writer.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
            while name not in seen and time.perf_counter() - t0 < 5:
                time.sleep(0.0005)
            lat.append((seen.get(name, float("nan")) - t0) * 1000)
            time.sleep(0.05)
        done.set()
        out["watch_latency_ms_median"] = round(statistics.median(lat), 2)
        out["watch_latency_ms_max"] = round(max(lat), 2)

        kubectl = shutil.which("kubectl")
        if kubectl:
            kc = os.path.join(tmp, "kubeconfig")
            with open(kc, "w") as f:
                yaml.safe_dump(ep.kubeconfig(), f)
            env = {**os.environ, "KUBECONFIG": kc, "HOME": tmp}
            argv = [kubectl, "--context", kubeconfig.context_name("bench"), "get", "pods"]
            subprocess.run(argv, env=env, capture_output=True, check=True)  # discovery cache warmed
            out["kubectl_get_pods_s"] = round(median_ms(
                lambda: subprocess.run(argv, env=env, capture_output=True, check=True), runs=5) / 1000, 3)
        srv.stop()
        writer.close()
        store.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=1))
