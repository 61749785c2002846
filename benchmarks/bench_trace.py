"""How long one `netsim trace` takes (simulation, observation in every namespace it crosses, the answer's
way back), on a 3-node cluster per plugin and backend.

A client pod on node-3 traces to a Service whose one endpoint is on node-1 (DNAT, a tunnel or routed hop,
and the answer back). Each trace is timed after one warm-up trace; the figure is the best and the median
of ROUNDS. Target: under 1 s per trace (the interactive budget of a command a person types).

    .venv/bin/python -m benchmarks.bench_trace [ROUNDS]        (default 5)

Clusters are named bt<hex> and removed by name at the end, whatever happened.
"""

from __future__ import annotations

import secrets
import statistics
import sys
import time

from netsim import lifecycle
from netsim.api import Cluster
from netsim.kernel.linux import LinuxKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.trace.api import trace

PLUGINS = [("flannel", "vxlan"), ("flannel", "host-gw"), ("calico", "vxlan"), ("calico", "direct"),
           ("canal", "vxlan")]
WORKLOAD = """
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {nodeName: node-3, containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: far, labels: {app: far}}
spec: {nodeName: node-1, containers: [{name: c, image: agnhost, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: far}
spec: {selector: {app: far}, ports: [{port: 80, targetPort: 8080}]}
"""


def bench(k: LinuxKernel, plugin: str, backend: str, rounds: int) -> dict[str, float]:
    name = f"bt{secrets.token_hex(3)}"
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                          "spec": {"nodes": 3, "network": {"plugin": plugin, "backend": backend}}},
                         Source("<bench>"))
    c = None
    try:
        c = Cluster.up(spec, timeout=60)
        c.apply(WORKLOAD)
        trace(c, "default/client", "svc/default/far:80")
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            report = trace(c, "default/client", "svc/default/far:80")
            times.append(time.perf_counter() - t0)
            assert report.agree, report.disagreements
        return {"best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3)}
    finally:
        if c is not None:
            c.close()
        lifecycle.down(k, name)


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 5
    k = LinuxKernel()
    try:
        for plugin, backend in PLUGINS:
            r = bench(k, plugin, backend, rounds)
            ok = "met" if r["best_s"] < 1.0 else "MISSED"
            print(f"{plugin}/{backend}: best {r['best_s']} s, median {r['median_s']} s (target < 1 s: {ok})",
                  flush=True)
    finally:
        k.close()


if __name__ == "__main__":
    main(sys.argv[1:])
