"""`down` of N pods on M nodes, step by step, against the kernel's floor (issue #18 item 1: 100 nodes /
10,000 pods under 10 s).

For each replica count R on a fresh cluster of M nodes (default 100, flannel VXLAN; `--plugin calico` or `canal`): `up`, `apply` of an
R-replica Deployment (no Service: `down` is what is timed), wait until every pod is Running and Ready and
its sandbox exists, then `down`, timed in all and per step (`DownReport.phases`: daemons, processes,
namespaces, etc_netns, store, state). With `--profile DIR` the `down` runs under cProfile (DIR/down-R.pstats).

The floor, in the same run, before and after the cluster (averaged, as a shared machine's load drifts):
`benchmarks/cdownfloor.c` builds M node and R pod namespaces, a veth per pod (its peer straight into the
pod), addresses, links up, per pod a directory with resolv.conf and hosts in /etc/netns and two files in its
node's directory (a state directory's sandbox record and IPAM reservation); then it times removing the
namespaces (pods, then nodes) and the directories on T threads each, at the same time, as `down` does (16,
the kernel layer's helper threads and netsim.fsclean's): `down_over_floor` is against that. Once, for
comparison, the same one after the other (`floor_in_turn`), and with `--serial-floor` on one thread.

Run as root from the repository root (nothing here runs in the test suite):

    .venv/bin/python -m benchmarks.bench_down [--nodes 100] [--replicas 1000 3000] [--profile DIR]
        [--serial-floor]

Prints one JSON row per size.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_scale import manifests, spec_of
from netsim import naming, state
from netsim.api import Cluster
from netsim.controlplane import objects as o
from netsim.fsclean import WORKERS
from netsim.kernel import netns as netns_mod
from netsim.lifecycle import ETC_NETNS

CDOWNFLOOR = Path(__file__).resolve().parent / "cdownfloor.c"


def build_floor(workdir: str) -> str:
    exe = os.path.join(workdir, "cdownfloor")
    subprocess.run(["cc", "-O2", "-pthread", "-o", exe, str(CDOWNFLOOR)], check=True)
    return exe


def run_floor(exe: str, tag: str, pods: int, nodes: int, threads: int, overlap: bool = True) -> dict[str, float]:
    """Seconds of the floor's teardown: namespaces, directories, and in all. Its names are
    netsim-dfl<tag>-..., removed by the program itself (also when it fails half way: atexit)."""
    os.makedirs(ETC_NETNS, exist_ok=True)
    out = subprocess.run([exe, f"netsim-dfl{tag}-", str(pods), str(nodes), str(threads), ETC_NETNS]
                         + (["overlap"] if overlap else []),
                         check=True, capture_output=True, text=True, timeout=3600).stdout.split()
    return {"netns_s": float(out[0]), "dirs_s": float(out[1]), "total_s": float(out[2])}


def ready_pods(c: Cluster) -> int:
    return sum(1 for p in c.store.list("Pod", "default") if o.labels(p).get("app") == "scale"
               and o.phase(p) == "Running" and o.is_ready(p) and not o.is_terminating(p))


def measure(name: str, nodes: int, replicas: int, timeout: float, profile: str | None,
            plugin: str = "flannel") -> dict[str, Any]:
    row: dict[str, Any] = {"nodes": nodes, "replicas": replicas, "plugin": plugin}
    t0 = time.perf_counter()
    c = Cluster.up(spec_of(name, nodes, plugin), timeout=600)
    row["up_s"] = round(time.perf_counter() - t0, 2)
    try:
        t0 = time.perf_counter()
        c.apply(manifests(replicas)[1:], wait=False)  # the Deployment(s) only
        pod_prefix = naming.pod_ns_prefix(name)
        while True:
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"timeout: {ready_pods(c)} of {replicas} pods ready after {timeout:.0f}s")
            if ready_pods(c) >= replicas and len(netns_mod.list_names(pod_prefix)) >= replicas:
                break
            time.sleep(2.0)
        row["apply_s"] = round(time.perf_counter() - t0, 2)
        row["pod_netns"] = len(netns_mod.list_names(pod_prefix))
        row["etc_netns_dirs"] = sum(1 for n in os.listdir(ETC_NETNS) if naming.owned_by(name, n))
        row["load_before_down"] = round(os.getloadavg()[0], 2)
    finally:
        c.close()
        prof = cProfile.Profile() if profile else None
        t0 = time.perf_counter()
        if prof is not None:
            prof.enable()
        report = Cluster.remove(name)
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.path.join(profile or ".", f"down-{replicas}.pstats"))
        row["down_s"] = round(time.perf_counter() - t0, 3)
        row["down_phases"] = report.phases
        row["down_namespaces"] = report.namespaces
        row["load_after_down"] = round(os.getloadavg()[0], 2)
    left = [n for n in netns_mod.list_names(naming.cluster_prefix(name)) if naming.owned_by(name, n)]
    left += [n for n in os.listdir(ETC_NETNS) if naming.owned_by(name, n)]
    row["left_behind"] = len(left) + (1 if state.load(name) is not None else 0)
    return row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--replicas", type=int, nargs="+", default=[1000, 3000])
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds for the pods to be Ready")
    ap.add_argument("--plugin", default="flannel", help="flannel, calico or canal (VXLAN)")
    ap.add_argument("--profile", help="directory for a cProfile of each down")
    ap.add_argument("--serial-floor", action="store_true", help="also time the floor on one thread")
    ap.add_argument("--no-cluster", action="store_true", help="the floor only")
    ap.add_argument("--floor-once", action="store_true",
                    help="the floor after the cluster only, not before nor in turn (10,000 sandboxes take minutes)")
    args = ap.parse_args(argv)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        exe = build_floor(work)
        for r in args.replicas:
            tag = secrets.token_hex(2)
            row: dict[str, Any] = {"nodes": args.nodes, "replicas": r}
            before = None if args.floor_once else run_floor(exe, tag, r, args.nodes, WORKERS)
            if not args.no_cluster:
                row = measure(f"dn{tag}", args.nodes, r, args.timeout, args.profile, args.plugin)
            after = run_floor(exe, tag, r, args.nodes, WORKERS)
            floor = (before["total_s"] + after["total_s"]) / 2 if before else after["total_s"]
            row["floor"] = {"threads": WORKERS, "total_s": round(floor, 3), "before": before, "after": after,
                            "load": round(os.getloadavg()[0], 2)}
            if not args.floor_once:
                row["floor_in_turn"] = run_floor(exe, tag, r, args.nodes, WORKERS, overlap=False)
            if args.serial_floor:
                row["floor_serial"] = run_floor(exe, tag, r, args.nodes, 1, overlap=False)
            if "down_s" in row:
                row["down_over_floor"] = round(row["down_s"] / floor, 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


if __name__ == "__main__":
    main()
