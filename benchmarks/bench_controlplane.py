"""The whole control plane against the raw sandbox floor, in one run.

Measures the time from `apply` of a Deployment with R replicas on a cluster of N nodes to all R pods Running,
Ready and with an IP: ReplicaSet controller, scheduler, kubelets making netns + CNI ADD (flannel, in
process), resolv.conf, the workload server answering on the pods' port, status writes. Beside it, in the
same run, the raw floor of benchmarks.bench_sandboxes for the same number of sandboxes (netns + veth +
address, nothing else, one thread; run before and after the cluster and averaged, as the load of a shared
machine drifts). Also the peak RSS (VmHWM) of the netsim processes involved: the cluster's daemon and this
process (which plays the CLI's part through netsim.api). Targets: ratio <= 2, peak RSS < 500 MB.
The control plane's own timeline (per event reason: count, first/last seconds after apply, summed
durations) is printed with the figures, and the time to scale the Deployment back to zero (every pod object
and sandbox gone; no target). Run as root:

    .venv/bin/python -m benchmarks.bench_controlplane [REPLICAS NODES] [--name NAME]

(default 1000 replicas on 50 nodes). To see where the daemon spends its time, attach py-spy to the daemon
pid the run prints first (`py-spy record -p PID -o daemon.svg`).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time

from benchmarks.bench_sandboxes import raw_floor
from netsim import daemonctl, lifecycle, state
from netsim.api import Cluster
from netsim.controlplane import objects as o
from netsim.kernel import netns
from netsim.kernel.linux import LinuxKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source


def deployment(replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
                     "template": {"metadata": {"labels": {"app": "bench"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx",
                                                           "ports": [{"containerPort": 80}]}]}}}}


def vm_hwm_kb(pid: int | str) -> int:
    """Peak resident set size of a process (VmHWM), in kB; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure_floor(n: int, tag: str) -> float:
    k = LinuxKernel()
    node = f"netsim-bench{tag}-node"
    k.netns_create(node)
    try:
        up, _ = raw_floor(node, f"netsim-bench{tag}-f", n)
    finally:
        for name in netns.list_names(f"netsim-bench{tag}"):
            k.netns_delete(name)
        k.close()
    return up


def ready_pods(c: Cluster) -> int:
    return sum(1 for p in c.pods("default") if o.labels(p).get("app") == "bench" and o.phase(p) == "Running"
               and o.is_ready(p) and (p.get("status") or {}).get("podIP") and not o.is_terminating(p))


def timeline(c: Cluster, seq0: int, wall0: float) -> dict:
    """Where the time went, from the control plane's own timeline: per reason, how many events, when the first
    and last happened (seconds after apply) and the sum of their durations (seconds)."""
    out: dict[str, dict] = {}
    for e in c.store.events_since(seq0):
        r = out.setdefault(e["reason"], {"n": 0, "first_s": e["time"] - wall0, "last_s": 0.0, "sum_s": 0.0})
        r["n"] += 1
        r["last_s"] = e["time"] - wall0
        r["sum_s"] += (e.get("duration_ms") or 0.0) / 1000
    return {k: {kk: round(vv, 2) if isinstance(vv, float) else vv for kk, vv in v.items()} for k, v in out.items()}


def cluster_spec(name: str, nodes: int):
    return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                          "spec": {"nodes": nodes}}, Source("<bench>"))


def measure_cluster(spec, replicas: int, timeout: float) -> dict:
    name = spec.name
    t0 = time.perf_counter()
    c = Cluster.up(spec, timeout=120)
    up_s = time.perf_counter() - t0
    try:
        pid = state.load(name).extra["daemonPid"]
        idle_kb = vm_hwm_kb(pid)
        print(json.dumps({"cluster": name, "daemon_pid": pid, "up_s": round(up_s, 2)}), flush=True)
        seq0 = max([0] + [e["seq"] for e in c.store.events_since(0)])
        t0, wall0 = time.perf_counter(), time.time()
        c.apply([deployment(replicas)], wait=False)
        # The convergence marker is cheap to poll; then count from the store, as the claim is about pods.
        daemonctl.wait_converged(name, c.store.current_rv(), timeout)
        while ready_pods(c) < replicas:
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"only {ready_pods(c)} of {replicas} pods ready after {timeout:.0f}s")
            time.sleep(0.2)
        apply_s = time.perf_counter() - t0
        ips = {p["status"]["podIP"] for p in c.pods("default") if o.labels(p).get("app") == "bench"}
        assert len(ips) == replicas, "pod IPs are not unique"
        row = {"up_s": round(up_s, 2), "apply_to_ready_s": round(apply_s, 2), "daemon_pid": pid,
               "daemon_idle_hwm_mb": round(idle_kb / 1024, 1), "timeline": timeline(c, seq0, wall0)}
        # The way back: scale to zero until every pod object and sandbox is gone (no target; reported).
        t0 = time.perf_counter()
        c.scale("Deployment", "bench", 0, timeout=timeout)
        while c.pods("default") or netns.list_names(f"netsim-{name}-pod-default-"):
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"pods still present {timeout:.0f}s after scaling to zero")
            time.sleep(0.1)
        row["scale_to_zero_s"] = round(time.perf_counter() - t0, 2)
        row["daemon_hwm_mb"] = round(vm_hwm_kb(pid) / 1024, 1)
        return row
    finally:
        c.close()
        k = LinuxKernel()
        try:
            lifecycle.down(k, name)
        finally:
            k.close()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="bench_controlplane")
    ap.add_argument("replicas", nargs="?", type=int, default=1000)
    ap.add_argument("nodes", nargs="?", type=int, default=50)
    ap.add_argument("--name", default=None, help="cluster name (default bench<hex>)")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args(argv)
    tag = secrets.token_hex(2)
    name = args.name or f"bench{tag}"
    # The floor runs before and after the cluster and the two are averaged: on a shared machine the load
    # drifts over a minute, and both measurements should see the same conditions.
    spec = cluster_spec(name, args.nodes)  # a bad name fails here, before any measuring
    before = measure_floor(args.replicas, tag)
    row = {"replicas": args.replicas, "nodes": args.nodes}
    row.update(measure_cluster(spec, args.replicas, args.timeout))
    after = measure_floor(args.replicas, tag)
    floor_s = (before + after) / 2
    row.update({"floor_s": round(floor_s, 2), "floor_before_s": round(before, 2), "floor_after_s": round(after, 2),
                "loadavg_1m": os.getloadavg()[0]})
    row["ratio"] = round(row["apply_to_ready_s"] / floor_s, 2)
    row["ms_per_pod"] = round(row["apply_to_ready_s"] / args.replicas * 1000, 2)
    row["floor_ms_per_pod"] = round(floor_s / args.replicas * 1000, 2)
    row["self_hwm_mb"] = round(vm_hwm_kb("self") / 1024, 1)
    row["peak_rss_total_mb"] = round(row["daemon_hwm_mb"] + row["self_hwm_mb"], 1)
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main(sys.argv[1:])
