"""Pod-like sandbox creation through the kernel layer, against the raw floor, in one process.

A sandbox is what a kubelet makes before any CNI plugin runs: a named netns, a veth from the node into it,
an address, links up. The floor does the same with the fewest possible steps: unshare + bind mount on one
thread, a pyroute2 socket opened inside, the same netlink requests, no abstraction. The ratio of the two
is the price of the kernel layer. Run as root:

    .venv/bin/python -m benchmarks.bench_sandboxes [N ...]        (default N = 100 1000)
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time

from pyroute2 import IPRoute

from netsim.kernel import netns
from netsim.kernel.linux import LinuxKernel


def _addr(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255 or 1}"


def via_kernel_layer(k: LinuxKernel, node: str, prefix: str, n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    for i in range(n):
        pod = f"{prefix}{i}"
        k.netns_create(pod)
        k.veth_add(node, f"v{i}", pod, "eth0", mtu=1450)
        k.addr_add(pod, "eth0", f"{_addr(i)}/32")
    t1 = time.perf_counter()
    for i in range(n):
        # The veth goes with its namespace; the kernel batches that cleanup instead of waiting for an RCU
        # grace period per deleted link.
        k.netns_delete(f"{prefix}{i}")
    return t1 - t0, time.perf_counter() - t1


def raw_floor(node: str, prefix: str, n: int) -> tuple[float, float]:
    """The same kernel work, written as plainly as possible on one thread."""
    result: list[float] = []

    def work() -> None:
        home = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = netns.open_netns(node)
        netns.setns(fd)
        os.close(fd)
        node_ipr = IPRoute()
        node_ipr.link("get", index=1)
        netns.setns(home)
        socks = []
        t0 = time.perf_counter()
        for i in range(n):
            pod = f"{prefix}{i}"
            netns.create_here(pod)
            ipr = IPRoute()
            ipr.link("set", index=1, state="up")
            netns.setns(home)
            pfd = netns.open_netns(pod)
            node_ipr.link("add", ifname=f"f{i}", kind="veth", mtu=1450,
                          peer={"ifname": "eth0", "net_ns_fd": pfd, "mtu": 1450})
            os.close(pfd)
            idx = ipr.link("get", ifname="eth0")[0]["index"]
            ipr.link("set", index=idx, state="up")
            hidx = node_ipr.link("get", ifname=f"f{i}")[0]["index"]
            node_ipr.link("set", index=hidx, state="up")
            ipr.addr("add", index=idx, address=_addr(i), prefixlen=32)
            socks.append(ipr)
        t1 = time.perf_counter()
        for i, ipr in enumerate(socks):
            ipr.close()
            netns.remove(f"{prefix}{i}")
        result.extend([t1 - t0, time.perf_counter() - t1])
        node_ipr.close()
        os.close(home)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return result[0], result[1]


def main(sizes: list[int]) -> list[dict]:
    tag = secrets.token_hex(2)
    node = f"netsim-bench{tag}-node"
    k = LinuxKernel(max_sockets=2048)
    k.netns_create(node)
    rows = []
    try:
        for n in sizes:
            floor_up, floor_down = raw_floor(node, f"netsim-bench{tag}-f", n)
            layer_up, layer_down = via_kernel_layer(k, node, f"netsim-bench{tag}-p", n)
            rows.append({
                "n": n, "layer_ms_per_pod": round(layer_up / n * 1000, 3),
                "floor_ms_per_pod": round(floor_up / n * 1000, 3), "ratio": round(layer_up / floor_up, 2),
                "layer_teardown_ms_per_pod": round(layer_down / n * 1000, 3),
                "floor_teardown_ms_per_pod": round(floor_down / n * 1000, 3),
            })
            print(json.dumps(rows[-1]), flush=True)
    finally:
        for name in netns.list_names(f"netsim-bench{tag}"):
            k.netns_delete(name)
        k.close()
    return rows


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000])
