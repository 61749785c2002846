"""Ten thousand Services on a live cluster, against the kernel's own floors, in one run (issue #18 item 4,
issue #16 item 2).

Phases, on a cluster of N nodes (default 3):

1. selectorless: `netsim apply -f` of S Services without selector, each with one EndpointSlice of 5
   endpoints, until the apply returns converged (every node's kube-proxy synced); checked afterwards in every
   node's kernel (the nat table has a KUBE-SERVICES jump per Service port). Floor: the bare restore of the
   same rules on every node (`Kernel.iptables_restore` of the payloads `render_full` gives for each node, in
   fresh namespaces, one node after the other, as bench_proxy measures its floor). Target: < 60 s and <= 3x.
   Also counted: "database is locked" lines in the daemon's log during the apply (the CLI's transaction must
   not starve the daemon's passes).
2. one-endpoint change: `netsim apply -f` of one slice with one endpoint moved, until every node's kube-proxy
   has it in the kernel (the node's ProxySynced event, written after its restore returned). Floor: one-rule
   nat transactions on a node's own table (bench_proxy's kernel probe "jump to KUBE-MARK-MASQ", what a new
   endpoint chain costs at least), alone on one node and on all nodes at once. Target: <= 1.3x.
   Three paths in turn: `netsim apply` handed to the cluster's warm CLI process (netsim.cli.warm, which
   `netsim up` starts and this benchmark starts too), `netsim apply` run cold (NETSIM_NO_WARM=1: the whole
   command in its own new process) and the Python API's write. Reported per path: the CLI's wall time
   (process start to exit), the time from the CLI's start to the last node's rules, and from the API's store
   write to the last node's rules.
3. selector-based: P pods (P/5 Deployments of 5 replicas, labels grp=gK), then S Services selecting one group
   each (the EndpointSlice controller writes their slices), until converged; same floor as 1.
4. idle: the daemon's CPU time (utime + stime from /proc) over an idle window at S Services and P pods.
   Target: < 2% of one CPU.

Everything is named after a throwaway cluster `bsv<hex>` and removed at the end. Run as root:

    .venv/bin/python -m benchmarks.bench_services [--services 10000] [--pods 1000] [--nodes 3]
        [--only selectorless|selector]

Prints one JSON row per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import yaml

from netsim import daemonctl, lifecycle, state
from netsim.api import Cluster
from netsim.cli import thin, warm
from netsim.kernel.linux import LinuxKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.proxy.config import proxy_config
from netsim.proxy.model import NodeInfo
from netsim.proxy.render import render_full
from netsim.proxy.tracker import ProxyTracker

EPS = 5
NETSIM = os.path.join(os.path.dirname(sys.executable), "netsim")
PROBE = "*nat\n:NETSIM-P3 - [0:0]\n-A NETSIM-P3 -s 192.0.2.{i}/32 -j KUBE-MARK-MASQ\nCOMMIT\n"
PROBE_CLEAN = "*nat\n:NETSIM-P3 - [0:0]\n-X NETSIM-P3\nCOMMIT\n"


def _ip(base: int, i: int) -> str:
    return f"10.{base + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def selectorless(n: int) -> list[dict]:
    docs: list[dict] = []
    for i in range(n):
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": "default"},
                     "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
        docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"s{i}-1", "namespace": "default",
                                  "labels": {"kubernetes.io/service-name": f"s{i}"}},
                     "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
                     "endpoints": [{"addresses": [_ip(100, i * EPS + j)], "conditions": {"ready": True}}
                                   for j in range(EPS)]})
    return docs


def groups(pods: int) -> list[dict]:
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"g{g}", "namespace": "default"},
             "spec": {"replicas": EPS, "selector": {"matchLabels": {"grp": f"g{g}"}},
                      "template": {"metadata": {"labels": {"grp": f"g{g}"}},
                                   "spec": {"containers": [{"name": "web", "image": "nginx",
                                                            "ports": [{"containerPort": 8080}]}]}}}}
            for g in range(pods // EPS)]


def selector_services(n: int, pods: int) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"t{i}", "namespace": "default"},
             "spec": {"selector": {"grp": f"g{i % (pods // EPS)}"}, "ports": [{"port": 80, "targetPort": 8080}]}}
            for i in range(n)]


def write_yaml(docs: list[dict]) -> str:
    fd, path = tempfile.mkstemp(prefix="netsim-bench-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)
    return path


def cli_env() -> dict[str, str]:
    """The CLI runs as an installed command does: with its modules' bytecode cached (written on the first
    run), even where the environment says PYTHONDONTWRITEBYTECODE (then every start compiled every module
    it imports from source, ~0.4 s of CPU more)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cli_apply(cluster: str, path: str, timeout: float, cpu: list[float] | None = None, *, cold: bool = False) -> float:
    """`netsim apply -f path`: its wall time; its CPU time (user + system) appended to `cpu` if given (of the
    thin client alone when the cluster's warm CLI process runs the command). `cold`: run the whole command
    in the new process, as without a warm CLI process (NETSIM_NO_WARM)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    env = cli_env()
    if cold:
        env[thin.NO_WARM_ENV] = "1"
    subprocess.run([NETSIM, "apply", "-f", path, "--cluster", cluster, "--timeout", str(int(timeout))],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def daemon_log_count(cluster: str, needle: str) -> int:
    try:
        with open(daemonctl.log_path(cluster), errors="replace") as f:
            return sum(needle in line for line in f)
    except OSError:
        return -1


def node_infos(st: state.ClusterState, spec) -> list[tuple[str, NodeInfo]]:
    zones = {n.name: n.labels.get("topology.kubernetes.io/zone") for n in spec.nodes}
    return [(n["netns"], NodeInfo(n["name"], (n["ip"],), n["podCIDR"], zones.get(n["name"]))) for n in st.nodes]


def services_in_kernel(k: LinuxKernel, netns: str) -> int:
    out = k.run(netns, ["iptables-save", "-t", "nat"], timeout=600).stdout  # 170k rules on a loaded machine
    return sum(1 for line in out.splitlines() if line.startswith("-A KUBE-SERVICES ") and "-j KUBE-SVC-" in line)


def restore_floor(k: LinuxKernel, c: Cluster, spec, st, tag: str) -> dict:
    """The bare restore of the rules every node holds now: render each node's full payload from the store
    (as its kube-proxy would) and restore it, staged as the agent stages it, into a fresh namespace."""
    tracker = ProxyTracker(lambda obj: _parse(obj))
    tracker.relist(c.store.list("Service"), c.store.list("EndpointSlice"))
    tracker.update()
    cfg = proxy_config(spec, skip_unchanged_top_chains=True)
    total = 0.0
    rules = 0
    for i, (_, node) in enumerate(node_infos(st, spec)):
        result = render_full(tracker.services(), tracker.endpoints(), node, cfg, existing_save="")
        rules = result.counts.nat_rules
        ns = f"netsim-bsf{tag}{i}-node"
        k.netns_create(ns)
        try:
            t = time.perf_counter()
            for payload in result.restores():  # as Kernel.iptables_restore, with room for a loaded machine
                k.run(ns, [k._tool("iptables-nft-restore", "iptables-restore"), "--noflush"], input=payload,
                      timeout=600)
            total += time.perf_counter() - t
        finally:
            k.netns_delete(ns)
    return {"floor_s": round(total, 2), "nat_rules_per_node": rules}


def _parse(obj: dict) -> Any:
    try:
        return parse_object(obj, Source("<store>"))
    except Exception:  # noqa: BLE001 - the daemon leaves such objects out too
        return None


def kernel_floor(k: LinuxKernel, netnses: list[str], reps: int = 5) -> dict:
    """One-rule nat transactions (a chain with a jump to KUBE-MARK-MASQ) on the nodes' own tables: alone on
    the first node, and on every node at once (what "in every node's kernel" costs at least)."""
    alone = []
    for i in range(reps):
        t = time.perf_counter()
        k.iptables_restore(netnses[0], PROBE.format(i=i + 1), noflush=True)
        alone.append(time.perf_counter() - t)
    together = []
    for i in range(reps):
        threads = [threading.Thread(target=k.iptables_restore, args=(ns, PROBE.format(i=i + 1)),
                                    kwargs={"noflush": True}) for ns in netnses]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        together.append(time.perf_counter() - t)
    for ns in netnses:
        k.iptables_restore(ns, PROBE_CLEAN, noflush=True)
    return {"one_rule_floor_ms": round(statistics.median(alone) * 1000, 1),
            "one_rule_floor_all_nodes_ms": round(statistics.median(together) * 1000, 1)}


def synced_after(c: Cluster, seq: int, nodes: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in c.store.events_since(seq):
        if e["reason"] == "ProxySynced" and e["object"].startswith("node/"):
            out[e["object"][5:]] = e["time"]
    return {n: t for n, t in out.items() if n in nodes}


def last_seq(c: Cluster) -> int:
    return max([0] + [e["seq"] for e in c.store.events_since(0)])


def _moved(c: Cluster, rep: int, services: int) -> dict:
    svc = f"s{(rep * 7919) % services}"
    sl = c.store.get("EndpointSlice", "default", f"{svc}-1")
    if sl is None:
        raise SystemExit(f"no slice {svc}-1")
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{svc}-1", "namespace": "default", "labels": sl["metadata"]["labels"]},
            "addressType": "IPv4", "ports": sl["ports"],
            "endpoints": [{"addresses": [_ip(200, rep)], "conditions": {"ready": True}}] + sl["endpoints"][1:]}


def _until_synced(c: Cluster, seq0: int, nodes: list[str]) -> float:
    deadline = time.time() + 60
    while len(synced := synced_after(c, seq0, nodes)) < len(nodes):
        if time.time() > deadline:
            raise SystemExit(f"only {sorted(synced)} synced the change within 60 s")
        time.sleep(0.01)
    return max(synced.values())


def one_endpoint_changes(c: Cluster, name: str, spec, reps: int, services: int) -> dict:
    """In turn: through `netsim apply -f` handed to the cluster's warm CLI process (as after `netsim up`), through
    `netsim apply -f` run cold in its own process (NETSIM_NO_WARM), and through the Python API
    (`Cluster.apply(wait=False)`: the same write without a CLI)."""
    nodes = [n.name for n in spec.nodes]
    figures: dict[str, list[float]] = {"warm": [], "warm_wall": [], "warm_cpu": [], "cold": [], "cold_wall": [],
                                       "cold_cpu": [], "api": []}
    for rep in range(3 * reps):
        doc = _moved(c, rep, services)
        seq0 = last_seq(c)
        wall0 = time.time()
        how = ("warm", "cold", "api")[rep % 3]
        if how == "api":
            c.apply([doc], wait=False)
        else:
            path = write_yaml([doc])
            try:
                figures[f"{how}_wall"].append(cli_apply(name, path, 120, figures[f"{how}_cpu"], cold=how == "cold"))
            finally:
                os.unlink(path)
        figures[how].append(_until_synced(c, seq0, nodes) - wall0)
        time.sleep(1.0)

    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 1)

    return {"cli_start_to_all_kernels_ms": ms(figures["warm"]), "cli_wall_ms": ms(figures["warm_wall"]),
            "cli_client_cpu_ms": ms(figures["warm_cpu"]),
            "cold_cli_start_to_all_kernels_ms": ms(figures["cold"]), "cold_cli_wall_ms": ms(figures["cold_wall"]),
            "cold_cli_cpu_ms": ms(figures["cold_cpu"]),
            "api_write_to_all_kernels_ms": ms(figures["api"]),
            "api_write_to_all_kernels_max_ms": round(max(figures["api"]) * 1000, 1), "reps": reps}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def run(kind: str, args, tag: str) -> list[dict]:
    name = f"bsv{tag}{kind[:2]}"
    # A node's pod CIDR is a /24 (at most 254 pods): the selector run gets the nodes its pods need.
    nodes = max(args.nodes, args.pods // 240 + 1) if kind == "selector" else args.nodes
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                          "spec": {"nodes": nodes}}, Source("<bench>"))
    rows = []
    k = LinuxKernel()
    c = Cluster.up(spec, timeout=180)
    try:
        warm.start(name)  # as `netsim up` does: later `netsim` commands are handed to it
        deadline = time.time() + 30
        while not warm.running(name) and time.time() < deadline:
            time.sleep(0.05)
        st = state.load(name)
        pid = int(st.extra["daemonPid"])
        netnses = [ns for ns, _ in node_infos(st, spec)]
        print(json.dumps({"cluster": name, "daemon_pid": pid}), flush=True)
        base = {"bench": f"services_{kind}", "services": args.services, "nodes": nodes}
        if kind == "selector":
            path = write_yaml(groups(args.pods))
            try:
                pods_s = cli_apply(name, path, args.timeout)
            finally:
                os.unlink(path)
            base["pods"] = args.pods
            base["pods_ready_s"] = round(pods_s, 2)
            docs = selector_services(args.services, args.pods)
        else:
            docs = selectorless(args.services)
        path = write_yaml(docs)
        locked0 = daemon_log_count(name, "database is locked")
        try:
            apply_s = cli_apply(name, path, args.timeout)
        finally:
            os.unlink(path)
        daemonctl.wait_converged(name, c.store.current_rv(), args.timeout)
        row = dict(base, apply_to_converged_s=round(apply_s, 2),
                   database_locked_lines=daemon_log_count(name, "database is locked") - locked0)
        print(json.dumps(row), flush=True)  # before the checks and the floor, which take long
        row["kube_services_rules_per_node"] = [services_in_kernel(k, ns) for ns in netnses]
        row.update(restore_floor(k, c, spec, st, tag))
        row["ratio"] = round(apply_s / row["floor_s"], 2) if row["floor_s"] else None
        row["loadavg_1m"] = os.getloadavg()[0]
        print(json.dumps(row), flush=True)
        rows.append(row)
        if kind == "selectorless" and not args.skip_change:
            change = dict(base, bench="services_one_endpoint_change")
            change.update(kernel_floor(k, netnses))
            change.update(one_endpoint_changes(c, name, spec, args.change_reps, args.services))
            change["loadavg_1m"] = os.getloadavg()[0]
            for which in ("cli_start_to_all_kernels_ms", "cold_cli_start_to_all_kernels_ms",
                          "api_write_to_all_kernels_ms"):
                short = which.split("_start")[0].split("_write")[0]
                change[f"ratio_{short}_vs_one_rule"] = round(change[which] / change["one_rule_floor_ms"], 2)
                change[f"ratio_{short}_vs_all_nodes"] = round(change[which]
                                                              / change["one_rule_floor_all_nodes_ms"], 2)
            print(json.dumps(change), flush=True)
            rows.append(change)
        time.sleep(3)
        idle = dict(base, bench=f"services_{kind}_idle_cpu", window_s=args.idle_seconds,
                    daemon_cpu_percent=round(100 * idle_cpu(pid, args.idle_seconds), 2))
        print(json.dumps(idle), flush=True)
        rows.append(idle)
    finally:
        c.close()
        try:
            lifecycle.down(k, name)
        finally:
            k.close()
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="bench_services")
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--only", choices=["selectorless", "selector"])
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--change-reps", type=int, default=5)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--skip-change", action="store_true")
    args = ap.parse_args(argv)
    tag = secrets.token_hex(2)
    rows = []
    for kind in ("selectorless", "selector"):
        if args.only in (None, kind):
            rows += run(kind, args, tag)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
