"""The daemon's pass with many pods and nothing changing (issue #16 item 2, #18 item 2): what a pass costs
when the cluster is idle, which is what every pass pays in front of whatever changed.

One cluster of N nodes (calico, so felix runs too) with an R-replica Deployment behind a Service and one
NetworkPolicy selecting its pods; once everything is Ready and converged, the converged marker's
`passSeconds` (the longest pass since the last marker; an idle pass writes one each time) is sampled for
`--idle` seconds. Then one pod's labels are changed and the time until the daemon is converged again is
taken (one object changed: the work should follow the change). `--profile DIR` records the daemon with
py-spy (if installed) during the idle window.

`--services S` adds S selectorless Services with one 5-endpoint EndpointSlice each (bench_services'
`selectorless`, applied before the Deployment), which with `--nodes 3 --replicas 1000 --plugin flannel` is
issue #16 item 2's idle target: the daemon's CPU per idle second (utime + stime of the daemon's pid from
/proc over the idle window, `daemon_cpu_percent`) under 2 %. Nodes get a pod CIDR large enough for
replicas/nodes pods (a /24 holds 254).

Run as root from the repository root (not part of the test suite):

    .venv/bin/python -m benchmarks.bench_idle [--nodes 10] [--replicas 1000] [--idle 20] [--profile DIR]
        [--services 10000] [--plugin flannel]

Prints one JSON row.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import time
from typing import Any

from benchmarks.bench_scale import _py_spy, manifests, ready_ips, spec_of
from benchmarks.bench_services import cpu_seconds, selectorless
from netsim import daemonctl, state
from netsim.api import Cluster

POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "scale-in", "namespace": "default"},
          "spec": {"podSelector": {"matchLabels": {"app": "scale"}}, "policyTypes": ["Ingress"],
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "scale"}}}]}]}}


def idle_passes(name: str, seconds: float) -> list[float]:
    """passSeconds of the markers written during `seconds` (one per idle pass), in ms."""
    out: list[float] = []
    seen: float | None = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        m = daemonctl.read_marker(name) or {}
        if m.get("time") != seen and m.get("converged"):
            seen = m.get("time")
            out.append(float(m.get("passSeconds", 0.0)) * 1000)
        time.sleep(0.1)
    return out


def cluster_spec(name: str, nodes: int, plugin: str, replicas: int) -> dict[str, Any]:
    """bench_scale's spec, with each node's pod CIDR big enough for its share of the replicas."""
    spec = spec_of(name, nodes, plugin)
    per_node = -(-replicas // nodes) + 10
    mask = 24
    while 2 ** (32 - mask) - 2 < per_node:
        mask -= 1
    if mask != 24:
        spec["spec"]["network"]["nodeCIDRMaskSize"] = mask
    return spec


def measure(nodes: int, replicas: int, idle: float, profile: str | None, timeout: float, services: int = 0,
            plugin: str = "calico") -> dict[str, Any]:
    name = f"bi{secrets.token_hex(3)}"
    row: dict[str, Any] = {"nodes": nodes, "replicas": replicas, "plugin": plugin, "services": services}
    t0 = time.perf_counter()
    c = Cluster.up(cluster_spec(name, nodes, plugin, replicas), timeout=300)
    row["up_s"] = round(time.perf_counter() - t0, 2)
    spy = None
    try:
        if services:
            t0 = time.perf_counter()
            c.apply(selectorless(services), wait=False, timeout=timeout)
            daemonctl.wait_converged(name, c.store.current_rv(), timeout)
            row["services_apply_to_converged_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        c.apply([*manifests(replicas), POLICY], wait=False)
        deadline = t0 + timeout
        while len(ready_ips(c)) < replicas:
            if time.perf_counter() > deadline:
                raise SystemExit(f"timeout: {len(ready_ips(c))} of {replicas} ready")
            time.sleep(0.5)
        daemonctl.wait_converged(name, c.store.current_rv(), max(1.0, deadline - time.perf_counter()))
        row["apply_to_converged_s"] = round(time.perf_counter() - t0, 2)
        row["ms_per_pod"] = round((time.perf_counter() - t0) / replicas * 1000, 3)
        time.sleep(2.0)  # the last writes' echoes settle
        pid = int(state.load(name).extra["daemonPid"])
        cpu0, w0 = cpu_seconds(pid), time.monotonic()
        passes = idle_passes(name, idle)
        row["daemon_cpu_percent"] = round(100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - w0), 2)
        row["loadavg"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(row), flush=True)  # before the profile and the change
        if profile:  # a second idle window: py-spy's sampling would count in the first one's CPU
            spy = _py_spy(pid, os.path.join(profile, f"idle-{nodes}x{replicas}x{services}.json"))
            time.sleep(idle)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
            spy = None
        if passes:
            row.update({"idle_passes": len(passes), "idle_pass_ms_median": round(statistics.median(passes), 1),
                        "idle_pass_ms_max": round(max(passes), 1)})
        # One pod changed (a label policy does not select on): converged again after how long.
        pod = next(p for p in c.store.list("Pod", "default") if (p.get("metadata") or {}).get("labels", {})
                   .get("app") == "scale")
        md = pod["metadata"]
        t0 = time.perf_counter()
        pod["metadata"] = {**md, "labels": {**md.get("labels", {}), "touched": "1"}}
        c.store.update(pod)
        daemonctl.wait_converged(name, c.store.current_rv(), 60.0)
        row["one_pod_change_s"] = round(time.perf_counter() - t0, 3)
        row["idle_after_change_ms"] = [round(x, 1) for x in idle_passes(name, 3.0)][:10]
    finally:
        if spy is not None and spy.poll() is None:
            spy.send_signal(2)
            spy.wait(60)
        c.close()
        t0 = time.perf_counter()
        Cluster(name).down() if state.load(name) is not None else None
        row["down_s"] = round(time.perf_counter() - t0, 2)
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of idle passes sampled")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--profile", default=None, help="directory for a py-spy profile of the idle daemon")
    ap.add_argument("--services", type=int, default=0, help="selectorless Services (5 endpoints each) first")
    ap.add_argument("--plugin", default="calico", choices=["calico", "flannel", "canal"])
    args = ap.parse_args(argv)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    row = measure(args.nodes, args.replicas, args.idle, args.profile, args.timeout, args.services, args.plugin)
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main()
