"""What-if: a one-endpoint change at N services with kube-proxy's *nftables* mode layout.

netsim emulates kube-proxy's iptables mode, where a one-endpoint change at 10k services cannot reach the
kernel in 50 ms (see `bench_proxy --only kernel` and benchmarks/README.md): nf_tables revalidates the whole
nat table after any rule with a verdict. This measures whether kube-proxy's newer nftables mode would
escape that on this machine. It loads that mode's layout (pkg/proxy/nftables/proxier.go: a `service-ips`
verdict map dispatching ClusterIP . protocol . port to per-service chains, each with a masquerade rule and
a `numgen random mod N vmap` over per-endpoint chains, each endpoint chain a hairpin masquerade rule and a
DNAT; `nat-prerouting` and `nat-output` base chains jumping to `services`) for N services x 5 endpoints,
then times the transaction kube-proxy would send for one moved endpoint (new endpoint chain, service
chain flushed and rewritten, old endpoint chain deleted) through `nft -f -`, as knftables does. A
transaction without a verdict (one new empty chain) is the comparison. Everything happens in a throwaway
namespace `netsim-tnm<hex>-node`. Run as root:

    .venv/bin/python -m benchmarks.bench_nft_mode [N ...]        (default N = 1000 10000)
"""

from __future__ import annotations

import json
import secrets
import statistics
import sys
import time

from netsim.kernel.linux import LinuxKernel

EPS = 5
TABLE = "ip kube-proxy"


def _ip(prefix: int, i: int) -> str:
    return f"10.{prefix + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def _service_rules(i: int, endpoint_chains: list[str]) -> list[str]:
    vmap = ", ".join(f"{j} : goto {c}" for j, c in enumerate(endpoint_chains))
    return [f"add rule {TABLE} svc-{i} ip daddr {_ip(96, i + 1)} tcp dport 80 ip saddr != 10.244.0.0/16 "
            "jump mark-for-masquerade",
            f"add rule {TABLE} svc-{i} numgen random mod {len(endpoint_chains)} vmap {{ {vmap} }}"]


def _endpoint(chain: str, ip: str) -> list[str]:
    return [f"add chain {TABLE} {chain}",
            f"add rule {TABLE} {chain} ip saddr {ip} jump mark-for-masquerade",
            f"add rule {TABLE} {chain} meta l4proto tcp dnat to {ip}:8080"]


def ruleset(n: int) -> str:
    lines = [f"table {TABLE} {{",
             " chain mark-for-masquerade { mark set mark or 0x4000; }",
             " map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }",
             " chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }",
             " chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }",
             " chain nat-output { type nat hook output priority -100; policy accept; jump services; }",
             "}"]
    elements = []
    for i in range(n):
        chains = [f"ep-{i}-{j}" for j in range(EPS)]
        lines.append(f"add chain {TABLE} svc-{i}")
        for j, c in enumerate(chains):
            lines += _endpoint(c, _ip(64, i * EPS + j))
        lines += _service_rules(i, chains)
        elements.append(f"{_ip(96, i + 1)} . tcp . 80 : goto svc-{i}")
    for k in range(0, len(elements), 2000):
        lines.append(f"add element {TABLE} service-ips {{ " + ", ".join(elements[k:k + 2000]) + " }")
    return "\n".join(lines) + "\n"


def one_endpoint_change(n: int, rep: int) -> str:
    i = (rep * 7919) % n
    new = f"epn-{rep}"
    chains = [new] + [f"ep-{i}-{j}" for j in range(1, EPS)]
    return "\n".join(_endpoint(new, _ip(200, rep)) + [f"flush chain {TABLE} svc-{i}"] + _service_rules(i, chains)
                     + [f"delete chain {TABLE} ep-{i}-0"]) + "\n"


def bench(k: LinuxKernel, n: int, reps: int = 5) -> dict:
    ns = f"netsim-tnm{secrets.token_hex(3)}-node"
    k.netns_create(ns)
    try:
        t = time.perf_counter()
        # nft 1.0.x needs over a minute for 10k services' worth of chains: more than nft_apply allows
        k.run(ns, ["nft", "-f", "-"], input=ruleset(n), timeout=900)
        load = time.perf_counter() - t
        changes, plain = [], []
        for rep in range(reps):
            t = time.perf_counter()
            k.nft_apply(ns, one_endpoint_change(n, rep))
            changes.append(time.perf_counter() - t)
            t = time.perf_counter()
            k.nft_apply(ns, f"add chain {TABLE} nothing-{rep}\n")
            plain.append(time.perf_counter() - t)
        return {"bench": "nftables_mode_what_if", "services": n, "endpointsPerService": EPS, "reps": reps,
                "loadS": round(load, 2), "oneEndpointChangeMs": round(statistics.median(changes) * 1000, 1),
                "transactionWithoutVerdictMs": round(statistics.median(plain) * 1000, 1), "targetMs": 50}
    finally:
        k.netns_delete(ns)


def main(sizes: list[int]) -> None:
    k = LinuxKernel()
    try:
        for n in sizes:
            print(json.dumps(bench(k, n)), flush=True)
    finally:
        k.close()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
