"""Run by test_workload_shards.py in a child process whose descriptor limit is 256 (the shards it starts
inherit it), so that a pod of 100 ports fills a process: the agent's own server, then shard after shard.

    python shards_child.py CLUSTER TAG {story|orphan}

story: serves three pods, asks each on two ports from inside its namespace, kills one shard (whose pod is
served again by itself), unserves one, stops; prints one JSON object with what it saw. orphan: starts one shard and
exits without stopping it (the test checks the shard does not outlive it). Namespaces are removed here
before the end (the test removes any left by a crash).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import sys
import time

from test_workload_server import tcp_ask

PORTS = [(8000 + i, "TCP") for i in range(100)]


def ask(kernel, ns: str, port: int) -> dict | str:
    """The identity a listener on 127.0.0.1:port of `ns` answers, or the error's name (ECONNREFUSED)."""
    try:
        return tcp_ask(kernel, ns, "127.0.0.1", port)[0]
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))


def main(cluster: str, tag: str, mode: str) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    from netsim.kernel.linux import LinuxKernel
    from netsim.workload.shards import WorkloadShards

    kernel = LinuxKernel()
    names = [f"netsim-twl{tag}-p{i}" for i in range(3)]
    out: dict = {}
    for ns in names:
        kernel.netns_create(ns)
    try:
        shards = WorkloadShards(kernel, cluster)
        shards.start()
        if mode == "orphan":
            shards.serve("d/p0", "n1", names[0], PORTS)  # fills this process's own server
            shards.serve("d/p1", "n1", names[1], PORTS)  # so a shard is started
            print(json.dumps({"shard_pids": [s.proc.pid for s in shards.shards]}), flush=True)
            os._exit(0)  # no stop: the shard must go by itself
        out["served"] = [shards.serve(f"d/p{i}", "n1", ns, PORTS) == {p: True for p in PORTS}
                         for i, ns in enumerate(names)]
        out["placement"] = [shards.placement(f"d/p{i}") for i in range(3)]
        out["ready"] = [shards.ready(f"d/p{i}") for i in range(3)]
        out["answers"] = [[ask(kernel, ns, port)["pod"] for port in (8000, 8099)] for ns in names]
        out["counts"] = {k: v for k, v in shards.request_counts().items() if k.startswith("d/")}
        out["health_shards"] = [(s["index"], s["state"], s["pods"]) for s in shards.health().get("shards", [])]
        victim = shards.shards[0]
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        deadline = time.monotonic() + 20
        while shards.placement("d/p1") == 1 and time.monotonic() < deadline:  # served again by itself
            time.sleep(0.02)
        out["replacement"] = shards.placement("d/p1")
        out["reserved"] = shards.ready("d/p1") and shards.listening("d/p1") == sorted(PORTS)
        out["killed_health"] = [(s["index"], s["state"]) for s in shards.health()["shards"]]
        out["answer_again"] = ask(kernel, names[1], 8000)
        out["unserved"] = shards.unserve("d/p2")
        out["after_unserve"] = ask(kernel, names[2], 8000)
        out["pods"] = shards.pods()
        # The agent's own server, full until now, takes pods again once it let one go.
        shards.unserve("d/p0")
        out["local_again"] = (shards.serve("d/p0b", "n1", names[0], PORTS) == {p: True for p in PORTS},
                              shards.placement("d/p0b"), ask(kernel, names[0], 8000)["pod"])
        procs = [s.proc for s in shards.shards]
        shards.stop()
        time.sleep(0.1)
        out["exited"] = [p.poll() is not None for p in procs]
    finally:
        for ns in names:
            kernel.netns_delete(ns)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
