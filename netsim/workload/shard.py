"""A workload shard process: `python -m netsim.workload.shard <cluster>` (see netsim.workload.shards).

It serves the pods' ports the node agent hands it over the socketpair named by NETSIM_WORKLOAD_FD, with a
`WorkloadServer` of its own (its own descriptor limit), and answers one request at a time:

    {"op": "serve", "pod", "node", "netns", "ports": [[port, proto], ...]}
        -> {"result": [[port, proto, ok]], "listening": [[port, proto]], "failed": [[port, proto, why]],
            "short": bool}
    {"op": "unserve", "pod"} -> {"ok": bool}
    {"op": "stats"} -> {"requests": {pod: n}, "busy": {pod: seconds}}

A request it cannot carry out is answered {"error": "..."}. At the end of the agent's stream (the agent
exited, or was killed) it closes every socket and exits: it never outlives the process that started it.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

from netsim import naming
from netsim.kernel.linux import LinuxKernel
from netsim.workload.server import WorkloadServer
from netsim.workload.shards import FD_ENV, listener_cap, recv_message, send_message

log = logging.getLogger("netsim.workload.shard")


def handle(server: WorkloadServer, req: dict[str, Any]) -> dict[str, Any]:
    """The answer to one request (pure dispatch over the server)."""
    op = req.get("op")
    if op == "serve":
        pod = str(req["pod"])
        result = server.serve(pod, str(req["node"]), str(req["netns"]),
                              [(int(p), str(proto)) for p, proto in req["ports"]])
        return {"result": [[p, proto, ok] for (p, proto), ok in result.items()],
                "listening": [list(k) for k in server.listening(pod)],
                "failed": [[p, proto, why] for (p, proto), why in server.failures(pod).items()],
                "short": server.short_of_descriptors(pod)}
    if op == "unserve":
        return {"ok": server.unserve(str(req["pod"]))}
    if op == "stats":
        return {"requests": server.request_counts(), "busy": {k: v[1] for k, v in server.request_stats().items()}}
    return {"error": f"unknown request {op!r}"}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not naming.is_cluster_name(argv[0]) or FD_ENV not in os.environ:
        print("usage: python -m netsim.workload.shard CLUSTER (started by the node agent, with "
              f"{FD_ENV} set)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s workload-shard[{os.getpid()}] %(message)s")
    sock = socket.socket(fileno=int(os.environ.pop(FD_ENV)))
    server = WorkloadServer(LinuxKernel(), max_listeners=listener_cap())
    server.start()
    try:
        while (req := recv_message(sock)) is not None:
            try:
                answer = handle(server, req)
            except Exception as exc:  # one bad request is answered, never the end of the shard
                log.exception("request %r failed", req.get("op"))
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            send_message(sock, answer)
    except OSError as exc:
        log.info("the node agent's stream ended: %s", exc)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
