"""kube-proxy's sync cost on one node namespace, against the bare iptables-restore floor, in one process.

For N services x 5 endpoints (ClusterIP, endpoints spread over two nodes, large-cluster mode as upstream
above 1000 endpoints):

- full sync: `ProxyAgent.sync` on a fresh node namespace (iptables-save read, render, restore) against the
  bare restore of exactly the payloads it applied (`Kernel.iptables_restore` of each, in a fresh
  namespace: the same process-spawn path, no rendering, no bookkeeping). Target: ratio <= 1.3.
  Also the bare restore of the same rules as ONE payload where that is affordable, to show why large syncs
  are staged (iptables-nft-restore 1.8.x is quadratic in the number of chains; see
  ProxyConfig.restore_stage_chains).
- partial sync: one endpoint of one service changes; the time from `ProxyAgent.sync` until the kernel has
  it (render + restore), with kube-proxy's behaviour of rewriting every top-level chain ("upstream") and
  with unchanged top-level chains left out ("skip-unchanged-top"). Target: <= 50 ms at 10k services.
  The agent is told which Service changed, as the daemon's kube-proxy tells it (`changed`); the render's
  CPU is also given for a render that compares every port instead (`renderWalkCpuMs`).
- kernel floor: bare restores of one-rule transactions on top of the N services (an empty nat commit, a
  rule without a verdict, a RETURN, a jump, a filter-table rule): what the kernel charges any change, and
  why a partial sync cannot get below it (nf_tables revalidates the whole table after a verdict rule).

Everything happens in a throwaway namespace `netsim-tbp<hex>-node`, removed at the end. Run as root:

    .venv/bin/python -m benchmarks.bench_proxy [N ...]        (default N = 1000 10000)

Prints one JSON row per measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import secrets
import statistics
import time

from netsim.kernel.linux import LinuxKernel
from netsim.node.proxy_agent import ProxyAgent
from netsim.proxy import chains
from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort
from netsim.proxy.render import render_full, render_partial

EPS_PER_SERVICE = 5
NODE = NodeInfo("node-1", ("172.18.0.2",), "10.244.0.0/24")
SINGLE_RESTORE_MAX = 2000  # above this one bare restore of everything takes minutes (quadratic)


def _ip(prefix: int, i: int) -> str:
    return f"10.{prefix + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def workload(n: int) -> tuple[list[ServicePort], dict]:
    services, endpoints = [], {}
    for i in range(n):
        sp = ServicePort("bench", f"svc-{i}", cluster_ip=_ip(96, i + 1), port=80)
        services.append(sp)
        endpoints[sp.key] = [Endpoint(_ip(64, i * EPS_PER_SERVICE + j), 8080, "node-1" if j % 2 else "node-2")
                             for j in range(EPS_PER_SERVICE)]
    return services, endpoints


class Namespace:
    """The throwaway node namespace; `fresh()` gives an empty one (iptables state and all)."""

    def __init__(self, k: LinuxKernel):
        self.k = k
        self.name = f"netsim-tbp{secrets.token_hex(3)}-node"

    def fresh(self) -> str:
        if self.k.netns_exists(self.name):
            self.k.netns_delete(self.name)
        self.k.netns_create(self.name)
        return self.name

    def remove(self) -> None:
        if self.k.netns_exists(self.name):
            self.k.netns_delete(self.name)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def bench_full(k: LinuxKernel, ns: Namespace, n: int, reps: int, cfg: ProxyConfig) -> dict:
    services, endpoints = workload(n)
    chains._hash16.cache_clear()
    t, c = time.perf_counter(), time.process_time()
    pure = render_full(services, endpoints, NODE, cfg, existing_save="")
    render_ms, render_cpu_ms = _ms(time.perf_counter() - t), _ms(time.process_time() - c)
    layer, floor = [], []
    for rep in range(reps):
        for which in (("layer", "floor") if rep % 2 == 0 else ("floor", "layer")):
            name = ns.fresh()
            if which == "layer":
                # A cold start: new objects and no cached chain names, as for a freshly started agent.
                fresh_services, fresh_endpoints = workload(n)
                chains._hash16.cache_clear()
                agent = ProxyAgent(k, name, NODE, cfg)
                t = time.perf_counter()
                agent.sync(fresh_services, fresh_endpoints)
                layer.append(time.perf_counter() - t)
            else:
                t = time.perf_counter()
                for payload in pure.restores():
                    k.iptables_restore(name, payload)
                floor.append(time.perf_counter() - t)
    row = {"bench": "proxy_full_sync", "services": n, "endpointsPerService": EPS_PER_SERVICE,
           "natChains": pure.counts.nat_chains, "natRules": pure.counts.nat_rules,
           "payloadBytes": len(pure.payload), "stages": pure.counts.stages, "reps": reps,
           "layerMs": _ms(statistics.median(layer)), "renderMs": render_ms, "renderCpuMs": render_cpu_ms,
           "floorMs": _ms(statistics.median(floor)),
           "ratio": round(statistics.median(layer) / statistics.median(floor), 3), "target": 1.3}
    if n <= SINGLE_RESTORE_MAX:
        name = ns.fresh()
        t = time.perf_counter()
        k.iptables_restore(name, pure.payload)
        row["singleRestoreFloorMs"] = _ms(time.perf_counter() - t)
    return row


def bench_partial(k: LinuxKernel, ns: Namespace, n: int, reps: int, cfg: ProxyConfig, mode: str) -> dict:
    services, endpoints = workload(n)
    name = ns.fresh()
    agent = ProxyAgent(k, name, NODE, cfg)
    agent.sync(services, endpoints)
    totals, renders, render_cpu, walk_cpu, restores, sizes = [], [], [], [], [], []
    current = dict(endpoints)
    for rep in range(reps):
        sp = services[(rep * 7919) % n]  # a different service each time
        eps = list(current[sp.key])
        eps[0] = dataclasses.replace(eps[0], ip=_ip(200, rep))  # one endpoint moves
        current = {**current, sp.key: eps}
        assert agent.state is not None
        changed = {sp.service_name: (sp,)}
        gc.disable()  # as ProxyAgent.sync does while it renders
        c = time.process_time()
        render_partial(agent.state, services, current, NODE, cfg)
        walk_cpu.append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        pure = render_partial(agent.state, services, current, NODE, cfg, changed)
        renders.append(time.perf_counter() - t)
        render_cpu.append(time.process_time() - c)
        gc.enable()
        t = time.perf_counter()
        report = agent.sync(services, current, changed=changed)
        totals.append(time.perf_counter() - t)
        assert not report.full and pure.counts.services_rewritten == (sp.service_name,)
        sizes.append(len(pure.payload))
        t = time.perf_counter()
        for payload in pure.restores():  # the same payload again: it is idempotent
            k.iptables_restore(name, payload)
        restores.append(time.perf_counter() - t)
    return {"bench": "proxy_partial_sync", "services": n, "mode": mode, "reps": reps,
            "totalMs": _ms(statistics.median(totals)), "totalMaxMs": _ms(max(totals)),
            "renderMs": _ms(statistics.median(renders)), "renderCpuMs": _ms(statistics.median(render_cpu)),
            "renderWalkCpuMs": _ms(statistics.median(walk_cpu)),
            "restoreFloorMs": _ms(statistics.median(restores)),
            "payloadBytes": int(statistics.median(sizes)), "targetMs": 50}


# The kernel's share of a small change: tiny nat transactions on top of N services. nf_tables validates a
# table at commit when the transaction added a rule with an expression that has a validate hook (every
# verdict: jump, goto, RETURN, DNAT, ...), walking every chain reachable from the table's base chains
# (nf_tables_api.c nft_table_validate / nft_chain_validate); a rule without a verdict is not validated.
KERNEL_PROBES = {
    "nat: empty commit": "*nat\nCOMMIT\n",
    "nat: new chain, rule without verdict": "*nat\n:NETSIM-P1 - [0:0]\n-A NETSIM-P1 -s 192.0.2.{i}/32\nCOMMIT\n",
    "nat: new chain, RETURN rule": "*nat\n:NETSIM-P2 - [0:0]\n-A NETSIM-P2 -s 192.0.2.{i}/32 -j RETURN\nCOMMIT\n",
    "nat: new chain, jump to KUBE-MARK-MASQ":
        "*nat\n:NETSIM-P3 - [0:0]\n-A NETSIM-P3 -s 192.0.2.{i}/32 -j KUBE-MARK-MASQ\nCOMMIT\n",
    "filter: new chain, ACCEPT rule": "*filter\n:NETSIM-P4 - [0:0]\n-A NETSIM-P4 -s 192.0.2.{i}/32 -j ACCEPT\nCOMMIT\n",
}


def bench_kernel(k: LinuxKernel, ns: Namespace, n: int, reps: int, cfg: ProxyConfig) -> dict:
    """Bare iptables-restore of one-rule transactions over N services: what any change costs at least."""
    services, endpoints = workload(n)
    name = ns.fresh()
    ProxyAgent(k, name, NODE, cfg).sync(services, endpoints)
    row: dict = {"bench": "proxy_kernel_floor", "services": n, "reps": reps}
    for label, template in KERNEL_PROBES.items():
        times = []
        for i in range(reps):
            t = time.perf_counter()
            k.iptables_restore(name, template.format(i=i + 1))  # a chain declaration flushes it first
            times.append(time.perf_counter() - t)
        row[label] = _ms(statistics.median(times))
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_proxy")
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument("--full-reps", type=int, default=0, help="default: 3 below 5000 services, else 1")
    parser.add_argument("--partial-reps", type=int, default=15)
    parser.add_argument("--only", choices=["full", "partial", "kernel"], help="run one of the benchmarks")
    args = parser.parse_args(argv)
    k = LinuxKernel()
    ns = Namespace(k)
    base = ProxyConfig(cluster_cidr="10.244.0.0/16")
    try:
        for n in args.sizes:
            reps = args.full_reps or (3 if n < 5000 else 2)
            if args.only in (None, "full"):
                print(json.dumps(bench_full(k, ns, n, reps, base)), flush=True)
            for mode, cfg in () if args.only not in (None, "partial") else (("upstream", base),
                              ("skip-unchanged-top", dataclasses.replace(base, skip_unchanged_top_chains=True))):
                print(json.dumps(bench_partial(k, ns, n, args.partial_reps, cfg, mode)), flush=True)
            if args.only in (None, "kernel"):
                print(json.dumps(bench_kernel(k, ns, n, 5, base)), flush=True)
    finally:
        ns.remove()
        k.close()


if __name__ == "__main__":
    main()
