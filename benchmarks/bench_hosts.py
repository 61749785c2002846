"""Three emulated hosts against one, with the same nodes and pods (issue #17 item 4): the overhead of the
distributed path.

For each layout, on a fresh cluster of N nodes (default 6; flannel VXLAN unless `--plugin/--backend`):

* `one`: every node on the cluster's one fabric (no `spec.hosts`), as netsim has always run;
* `three`: `spec.hosts` with three emulated hosts, nodes dealt round-robin (node-1 and node-4 on the first
  host, ...), their fabrics joined by VXLAN over the hosts' segment; the node network's MTU 50 lower.

and per layout:

* `up` (namespaces, daemon, first convergence) and `down`;
* `apply` of an R-replica Deployment (default 120) behind a ClusterIP Service plus one client pod pinned to
  node-1, timed until every pod is Ready and the daemon reports a quiet pass;
* request latency: `--probes` TCP connects + identity request from the client to one web pod on every other
  node (median per target; with three hosts the targets on node-4, node-7... are on the client's host,
  the others across hosts);
* a closed-loop load through the Service from the client (`--load-seconds`, 8 connections): requests/s
  and p50/p99 (most requests cross nodes, and with three hosts two thirds of them cross hosts);
* bulk TCP from the client to a pod on node-2 (`--mbytes` MB through `nc`): MB/s, which is where the second
  encapsulation (flannel's VXLAN inside the hosts') and the lower MTU show;
* the packets the hosts' VXLAN devices sent (three hosts only).

Run as root from the repository root (nothing here runs in the test suite):

    .venv/bin/python -m benchmarks.bench_hosts [--nodes 6] [--replicas 120] [--plugin flannel]
        [--backend vxlan] [--probes 30] [--load-seconds 5] [--mbytes 200] [--runs 1]

Prints one JSON row per layout and run, then a summary (three / one per figure).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import threading
import time
from typing import Any

from netsim import hostnet, lifecycle, naming
from netsim.api import Cluster
from netsim.kernel.linux import LinuxKernel

HOSTS = [{"name": "ha", "address": "192.168.90.11/24"}, {"name": "hb", "address": "192.168.90.12"},
         {"name": "hc", "address": "192.168.90.13"}]
BULK_PORT = 5001


def manifests(replicas: int) -> list[dict[str, Any]]:
    labels = {"app": "web"}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": "web", "image": "nginx",
                                                        "ports": [{"containerPort": 80}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": labels, "ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
         "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}},
    ]


def spec(name: str, nodes: int, plugin: str, backend: str, hosts: bool) -> dict[str, Any]:
    return {"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
            "spec": {"nodes": nodes, "network": {"plugin": plugin, "backend": backend},
                     **({"hosts": HOSTS} if hosts else {})}}


def one_web_pod_per_node(c: Cluster) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in c.pods("default"):
        node = (p.get("spec") or {}).get("nodeName")
        if p["metadata"]["name"].startswith("web-") and node and node not in out:
            out[node] = p["metadata"]["name"]
    return out


def bulk_mbps(c: Cluster, k: LinuxKernel, target_pod: str, mbytes: int) -> float | None:
    """MB/s of `mbytes` MB from the client pod to `target_pod` over TCP (nc into /dev/null)."""
    dst = next(p for p in c.pods("default") if p["metadata"]["name"] == target_pod)
    dst_ns = naming.pod_ns(c.name, "default", target_pod)
    src_ns = naming.pod_ns(c.name, "default", "client")
    server = threading.Thread(target=lambda: k.run(dst_ns, ["sh", "-c", f"nc -l -p {BULK_PORT} >/dev/null"],
                                                   check=False, timeout=120), daemon=True)
    server.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    proc = k.run(src_ns, ["sh", "-c", f"head -c {mbytes * 1_000_000} /dev/zero | nc -N -w 30 "
                                      f"{dst['status']['podIP']} {BULK_PORT}"], check=False, timeout=120)
    took = time.monotonic() - t0
    server.join(timeout=30)
    return round(mbytes / took, 1) if proc.returncode == 0 else None


def vxlan_tx(k: LinuxKernel, name: str) -> int:
    total = 0
    for h in HOSTS:
        out = k.run(naming.machine_ns(name, h["name"]), ["ip", "-j", "-s", "link", "show", hostnet.UNDERLAY_VXLAN],
                    check=False).stdout
        if out.strip():
            total += int(json.loads(out)[0]["stats64"]["tx"]["packets"])
    return total


def run_layout(k: LinuxKernel, args: argparse.Namespace, hosts: bool) -> dict[str, Any]:
    name = f"bh{'3' if hosts else '1'}{secrets.token_hex(2)}"
    row: dict[str, Any] = {"layout": "three hosts" if hosts else "one host", "nodes": args.nodes,
                           "pods": args.replicas + 1, "plugin": f"{args.plugin}/{args.backend}"}
    c = None
    try:
        t0 = time.monotonic()
        c = Cluster.up(spec(name, args.nodes, args.plugin, args.backend, hosts), timeout=300)
        row["upS"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        c.apply(manifests(args.replicas), timeout=600)
        c.wait_converged(timeout=600)
        row["applyS"] = round(time.monotonic() - t0, 2)
        web = one_web_pod_per_node(c)
        host_of = {n.name: n.host for n in c.spec.nodes}
        lat: dict[str, float] = {}
        for node, pod in sorted(web.items()):
            if node == "node-1":
                continue
            res = c.probe("default/client", f"default/{pod}", [80], count=args.probes, timeout=2)
            ok = [r.ms for r in res if r.connected]
            if ok:
                lat[node] = statistics.median(ok)
        cross = [v for n, v in lat.items() if host_of.get(n) != host_of.get("node-1")]
        same = [v for n, v in lat.items() if host_of.get(n) == host_of.get("node-1")]
        row["probeMsMedian"] = round(statistics.median(lat.values()), 2) if lat else None
        if hosts:
            row["probeMsCrossHost"] = round(statistics.median(cross), 2) if cross else None
            row["probeMsSameHost"] = round(statistics.median(same), 2) if same else None
        rep = c.load("default/client", "svc/default/web", port=80, duration=args.load_seconds, connections=8)
        row["loadRps"] = rep.get("rate")
        row["loadP50Ms"] = rep["latencyMs"]["p50"]
        row["loadP99Ms"] = rep["latencyMs"]["p99"]
        row["loadFailed"] = sum(rep.get(o, 0) for o in ("refused", "timeout", "reset", "error"))
        if "node-2" in web:
            row["bulkMBps"] = bulk_mbps(c, k, web["node-2"], args.mbytes)
        if hosts:
            row["hostVxlanTxPackets"] = vxlan_tx(k, name)
    finally:
        if c is not None:
            c.close()
        t0 = time.monotonic()
        lifecycle.down(k, name)
        row["downS"] = round(time.monotonic() - t0, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=6)
    ap.add_argument("--replicas", type=int, default=120)
    ap.add_argument("--plugin", default="flannel")
    ap.add_argument("--backend", default="vxlan")
    ap.add_argument("--probes", type=int, default=30)
    ap.add_argument("--load-seconds", type=float, default=5.0)
    ap.add_argument("--mbytes", type=int, default=200)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    k = LinuxKernel()
    rows: list[dict[str, Any]] = []
    try:
        for _ in range(args.runs):
            for hosts in (False, True):  # alternate, as the load of a shared machine drifts
                row = run_layout(k, args, hosts)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        k.close()
    summary: dict[str, Any] = {}
    for key in ("upS", "applyS", "probeMsMedian", "loadRps", "loadP50Ms", "loadP99Ms", "bulkMBps", "downS"):
        one = [r[key] for r in rows if r["layout"] == "one host" and r.get(key) is not None]
        three = [r[key] for r in rows if r["layout"] == "three hosts" and r.get(key) is not None]
        if one and three:
            summary[key] = {"one": statistics.median(one), "three": statistics.median(three),
                            "threeOverOne": round(statistics.median(three) / statistics.median(one), 2)}
    print(json.dumps({"summary": summary}, indent=1))


if __name__ == "__main__":
    main()
