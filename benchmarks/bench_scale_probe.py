"""Probing, tracing and verifying at scale, each against the same work on a 3-node cluster.

For each cluster size (3 nodes, then N nodes, default 100) on canal/vxlan (felix policy, host-local
per-node CIDRs of /22 so 3 nodes can hold the same pods as 100):
  * a matrix namespace `mx` of M pods (default 100), each the only replica of its own Deployment
    `m<i>` behind its own Service, spread over the nodes by the scheduler; and BULK further pods (default
    900, one Deployment in namespace `bulk`) so the cluster holds M + BULK pods (1,000 by default);
  * the M x M reachability matrix through the Services (`Cluster.probe(via="service")`: 10,000 real
    TCP connections through kube-proxy's DNAT by default), all answered; target < 5 s at 100 nodes;
  * `trace` (simulated + observed, `Cluster.trace_summary`) between two matrix pods on different nodes;
    target < 1 s;
  * 50 NetworkPolicies in `mx` (policy i selects m<i> and admits m<i+1>..m<i+5>), then `verify` of the
    M x M matrix through the Services with the policy model built over every pod of the cluster;
    target < 30 s. Denied cells cost the probe timeout (0.3 s here), once: probes run concurrently.

    .venv/bin/python -m benchmarks.bench_scale_probe [N_NODES [M [BULK]]]     (defaults: 100 100 900)

Clusters are named sp<hex> and removed by name at the end, whatever happened.
"""

from __future__ import annotations

import secrets
import statistics
import sys
import time
from collections import Counter
from typing import Any

from netsim import lifecycle
from netsim.api import Cluster
from netsim.kernel.linux import LinuxKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source

ROUNDS = 3
POLICIES = 50
ADMITTED = 5  # policy i admits the next ADMITTED matrix pods


def spec(name: str, nodes: int) -> Any:
    return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                          "spec": {"nodes": nodes, "network": {"plugin": "canal", "backend": "vxlan",
                                                               "podCIDR": "10.0.0.0/12",
                                                               "nodeCIDRMaskSize": 22}}},
                         Source("<bench>"))


def _deployment(name: str, ns: str, replicas: int, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "srv", "image": "agnhost",
                                                           "ports": [{"containerPort": 80}]}]}}}}


def manifests(m: int, bulk: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                                  for ns in ("mx", "bulk")]
    for i in range(m):
        docs.append(_deployment(f"m{i}", "mx", 1, {"app": f"m{i}"}))
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"m{i}", "namespace": "mx"},
                     "spec": {"selector": {"app": f"m{i}"}, "ports": [{"port": 80, "targetPort": 80}]}})
    if bulk:
        docs.append(_deployment("bulk", "bulk", bulk, {"app": "bulk"}))
    return docs


def policies(m: int) -> list[dict[str, Any]]:
    return [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": f"p{i}", "namespace": "mx"},
             "spec": {"podSelector": {"matchLabels": {"app": f"m{i}"}},
                      "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                          {"key": "app", "operator": "In",
                           "values": [f"m{(i + j) % m}" for j in range(1, ADMITTED + 1)]}]}}]}]}}
            for i in range(min(POLICIES, m))]


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 3), "best": round(min(xs), 3), "worst": round(max(xs), 3)}


def measure(k: LinuxKernel, nodes: int, m: int, bulk: int) -> dict[str, Any]:
    name = f"sp{secrets.token_hex(3)}"
    out: dict[str, Any] = {"nodes": nodes, "pods": m + bulk}
    c = None
    try:
        t0 = time.perf_counter()
        c = Cluster.up(spec(name, nodes), timeout=300)
        out["up_s"] = round(time.perf_counter() - t0, 1)
        t = time.perf_counter()
        c.apply(manifests(m, bulk), timeout=900)
        c.wait_converged(600)
        out["apply_s"] = round(time.perf_counter() - t, 1)
        time.sleep(2.0)  # the last pods' servers open their sockets; the agents go idle
        # the matrix through the Services
        runs, outcomes = [], Counter()
        for _ in range(ROUNDS):
            t = time.perf_counter()
            results = c.probe("mx/*", "mx/*", ports=[80], via="service", timeout=2.0)
            runs.append(time.perf_counter() - t)
            outcomes = Counter(r.outcome for r in results)
        out["matrix_probes"] = sum(outcomes.values())
        out["matrix_outcomes"] = dict(outcomes)
        out["matrix_s"] = _stats(runs)
        # one trace between matrix pods on different nodes
        pods = {p["metadata"]["name"]: p for p in c.pods("mx")}
        first = next(iter(pods.values()))
        other = next((p for p in pods.values() if p["spec"].get("nodeName") != first["spec"].get("nodeName")),
                     None) or list(pods.values())[-1]
        src, dst = f"mx/{first['metadata']['name']}", f"mx/{other['metadata']['name']}"
        runs, verdict = [], None
        for _ in range(ROUNDS):
            t = time.perf_counter()
            summary = c.trace_summary(src, dst, 80)
            runs.append(time.perf_counter() - t)
            verdict = (summary.get("verdict"), summary.get("agree"))
        out["trace"] = {"verdict": verdict, **_stats(runs)}
        # verify under 50 policies
        c.apply(policies(m))
        c.wait_converged(120)
        time.sleep(1.5)  # felix's rules can trail the convergence marker (see README: bench_probe)
        runs, report = [], None
        for _ in range(ROUNDS):
            t = time.perf_counter()
            report = c.verify("mx/*", "mx/*", ports=[80], protocols=["TCP"], via="service", timeout=0.3)
            runs.append(time.perf_counter() - t)
        assert report is not None
        out["verify_cells"] = len(report.cells)
        out["verify_ok"] = report.ok
        out["verify_denied"] = sum(not x.expected for x in report.cells)
        out["verify_disagreements"] = sum(1 for x in report.cells if x.observed is not None
                                          and x.observed != x.expected)
        out["verify_s"] = _stats(runs)
    finally:
        if c is not None:
            c.close()
        t = time.perf_counter()
        lifecycle.down(k, name)
        out["down_s"] = round(time.perf_counter() - t, 1)
    return out


def _line(r: dict[str, Any]) -> str:
    return (f"{r['nodes']:>4} nodes, {r['pods']} pods: up {r.get('up_s')} s, apply {r.get('apply_s')} s; "
            f"matrix {r.get('matrix_probes')} probes {r.get('matrix_outcomes')} in {r.get('matrix_s')} s; "
            f"trace {r.get('trace')}; verify {r.get('verify_cells')} cells "
            f"({r.get('verify_denied')} denied, {r.get('verify_disagreements')} disagreeing, ok={r.get('verify_ok')}) "
            f"in {r.get('verify_s')} s; down {r.get('down_s')} s")


def main(argv: list[str]) -> None:
    nodes = int(argv[0]) if argv else 100
    m = int(argv[1]) if len(argv) > 1 else 100
    bulk = int(argv[2]) if len(argv) > 2 else 900
    k = LinuxKernel()
    try:
        small = measure(k, 3, m, bulk)
        print(_line(small), flush=True)
        big = measure(k, nodes, m, bulk)
        print(_line(big), flush=True)
        print(f"targets at {nodes} nodes: matrix < 5 s: {'met' if big['matrix_s']['median'] < 5 else 'MISSED'}; "
              f"trace < 1 s: {'met' if big['trace']['median'] < 1 else 'MISSED'}; "
              f"verify < 30 s: {'met' if big['verify_s']['median'] < 30 else 'MISSED'}")
    finally:
        k.close()


if __name__ == "__main__":
    main(sys.argv[1:])
