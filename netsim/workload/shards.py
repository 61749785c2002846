"""The pods' ports served from as many processes as the descriptor limit needs.

A listening socket is a descriptor of the process that holds it, and RLIMIT_NOFILE caps what one process may
hold: where the hard limit cannot be raised (this machine's containers start at 20,000, with no
CAP_SYS_RESOURCE), one process cannot serve 20,000 pods. On a real node each container is a process of its
own; netsim keeps its one epoll thread per process, and adds processes as the pods need them:

- `WorkloadShards` is what the node agent holds: the same interface as `WorkloadServer` (`serve`,
  `unserve`, `listening`, `failures`, `ready`, `pods`, the request counters, `health`). A pod goes to the
  agent's own server first; when a port fails there only because that process reached its descriptor
  reserve (`WorkloadServer.short_of_descriptors`), the pod is served by a shard process instead, started
  on demand, and stays there until it is unserved. Pods sharing a namespace (hostNetwork pods on one node)
  go to the process that already serves that namespace, so that a port taken twice fails as it would in
  one process, and one raw SCTP socket answers for the namespace.
- A shard is `python -m netsim.workload.shard <cluster>` (`netsim.workload.shard`): a `WorkloadServer` in
  its own process, driven over a socketpair by length-prefixed JSON requests. Its command line names the
  cluster, so `down` finds and kills it with the cluster's other processes (`netsim.daemonproc.role_of`:
  role "workload"), also after a crash; and it exits by itself when the agent's end of the socketpair
  closes (the agent exited, or was killed).

What a shard answered for a pod (listening ports, failures) is kept here: a shard's state changes only by
these requests, so `ready()` costs no round trip. A shard that dies takes its pods' listeners with it: a
thread waiting on each shard's exit serves its pods again at once, in another process, as a kubelet
restarts the containers of a crashed runtime (in between they read as not listening, so not Ready).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netsim.kernel.api import Kernel
from netsim.workload.server import PortKey, WorkloadServer

log = logging.getLogger(__name__)

SHARD_MODULE = "netsim.workload.shard"
FD_ENV = "NETSIM_WORKLOAD_FD"  # the shard's end of the socketpair
# At most this many listeners in each process (the agent's and every shard), below the descriptor limit:
# lets a test, or a user who wants to see the shards, spread a small cluster's pods over them.
CAP_ENV = "NETSIM_WORKLOAD_LISTENERS"
_LEN = struct.Struct("!I")
MAX_SHARDS = 64  # each holds up to its own descriptor limit of listeners: far past any machine's memory
REQUEST_TIMEOUT = 60.0  # a shard's answer to one request; opening a pod's ports takes milliseconds


class ShardGone(Exception):
    """The shard process does not answer: it exited or was killed."""


def send_message(sock: socket.socket, obj: Any) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    sock.sendall(_LEN.pack(len(data)) + data)


def recv_message(sock: socket.socket) -> Any:
    """The next message, or None at the peer's end of stream."""
    head = _recv_exactly(sock, _LEN.size)
    if head is None:
        return None
    body = _recv_exactly(sock, _LEN.unpack(head)[0])
    if body is None:
        return None
    return json.loads(body)


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def listener_cap() -> int | None:
    """The listener cap from NETSIM_WORKLOAD_LISTENERS (a positive integer), or None."""
    raw = os.environ.get(CAP_ENV, "").strip()
    if not raw:
        return None
    try:
        cap = int(raw)
    except ValueError:
        cap = 0
    if cap < 1:
        raise ValueError(f"{CAP_ENV}={raw!r}: expected a positive number of listeners")
    return cap


def _ports_of(items: list[list[Any]]) -> list[PortKey]:
    return [(int(port), str(proto)) for port, proto in items]


class RemoteShard:
    """One shard process and the agent's end of its socketpair; requests are one at a time."""

    def __init__(self, cluster: str, index: int):
        self.index = index
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            env = {**os.environ, FD_ENV: str(theirs.fileno())}
            self.proc = subprocess.Popen([sys.executable, "-m", SHARD_MODULE, cluster], pass_fds=(theirs.fileno(),),
                                         env=env, stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(REQUEST_TIMEOUT)
        self._sock = ours
        self.gone: str | None = None
        self.pods = 0  # pods placed here (the agent's count)
        self.full = False  # refused a pod for descriptors since it last let one go

    def request(self, op: str, **args: Any) -> Any:
        with self._lock:
            if self.gone is not None:
                raise ShardGone(self.gone)
            try:
                send_message(self._sock, {"op": op, **args})
                answer = recv_message(self._sock)
            except (OSError, ValueError) as exc:
                answer, why = None, f"{type(exc).__name__}: {exc}"
            else:
                why = "it closed its end"
            if answer is None:
                self.gone = f"workload shard {self.index} (pid {self.proc.pid}): {why}"
                log.error("%s; its pods are served again elsewhere", self.gone)
                self._close()
                raise ShardGone(self.gone)
            if "error" in answer:
                raise RuntimeError(f"workload shard {self.index}: {answer['error']}")
            return answer

    def alive(self) -> bool:
        return self.gone is None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self.gone is None:
                self.gone = "stopped"
            self._close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


@dataclass
class _Placed:
    """Where a pod is served, and (for a shard) what the shard answered."""

    shard: RemoteShard | None  # None: the agent's own server
    netns: str
    node: str = ""
    ports: list[tuple[int, str]] = field(default_factory=list)
    listening: list[PortKey] = field(default_factory=list)
    failed: dict[PortKey, str] = field(default_factory=dict)


class WorkloadShards:
    """The agent's workload server and, past its descriptors, shard processes (see the module docstring)."""

    def __init__(self, kernel: Kernel, cluster: str, *, local: WorkloadServer | None = None):
        self.local = local if local is not None else WorkloadServer(kernel, max_listeners=listener_cap())
        self._cluster = cluster
        self._lock = threading.RLock()
        self._placed: dict[str, _Placed] = {}
        self._netns: dict[str, tuple[RemoteShard | None, int]] = {}  # netns -> (its process, pods placed there)
        self.shards: list[RemoteShard] = []
        # The agent's own server refused a pod for descriptors and has let none go since: past the wall the
        # next pods go straight to the shards (no failed bind per pod), as a full shard is skipped.
        self._local_full = False
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.local.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            shards, self.shards = self.shards, []
            self._placed.clear()
            self._netns.clear()
        self.local.stop()
        for shard in shards:
            shard.stop()

    def health(self) -> dict[str, Any]:
        """The agent's own server's health, with each shard's process: {"index", "pid", "pods", "state"}."""
        out = self.local.health()
        with self._lock:
            shards = list(self.shards)
        if shards:
            out["shards"] = [{"index": s.index, "pid": s.proc.pid, "pods": s.pods,
                              "state": "running" if s.alive() else "dead", "error": s.gone} for s in shards]
        return out

    # -- pods ---------------------------------------------------------------------------------------
    def serve(self, pod_key: str, node: str, netns: str, ports: Iterable[tuple[int, str]]) -> dict[PortKey, bool]:
        """WorkloadServer.serve, in the process that serves the pod's namespace, or the agent's own, or a shard."""
        wanted = list(ports)
        with self._lock:
            if self._stopped:
                raise RuntimeError("the workload server has been stopped")
            placed = self._placed.get(pod_key)
            if placed is not None and (placed.netns != netns or not self._usable(placed.shard)):
                self._unserve_locked(pod_key)
                placed = None
            if placed is not None:
                result = self._serve_on(placed.shard, pod_key, node, netns, wanted)
                if result is not None:
                    return result
                self._unserve_locked(pod_key)  # its new ports found no descriptors there: move it
            host, _ = self._netns.get(netns, (None, 0))
            if netns in self._netns and self._usable(host):
                candidates: list[RemoteShard | None] = [host]  # one process per namespace
            else:
                candidates = [*([] if self._local_full else [None]),
                              *(s for s in self.shards if s.alive() and not s.full)]
            for shard in candidates:
                result = self._serve_on(shard, pod_key, node, netns, wanted)
                if result is not None:
                    return result
            if netns not in self._netns and len(self.shards) < MAX_SHARDS:  # one new process per call at most
                shard = self._new_shard()
                result = self._serve_on(shard, pod_key, node, netns, wanted)
                if result is not None:
                    return result
            # Nowhere to go: the agent's own server keeps the pod with its failures (the reason on the pod).
            result = self._serve_on(None, pod_key, node, netns, wanted, last_resort=True) or {}
            for key, why in self.local.failures(pod_key).items():
                log.warning("%s: cannot serve %s/%s in %s, in any process: %s", pod_key, key[0], key[1], netns, why)
            return result

    def unserve(self, pod_key: str) -> bool:
        with self._lock:
            return self._unserve_locked(pod_key)

    def listening(self, pod_key: str) -> list[PortKey]:
        with self._lock:
            placed = self._placed.get(pod_key)
            if placed is None or placed.shard is None:
                return self.local.listening(pod_key)
            return list(placed.listening) if placed.shard.alive() else []

    def failures(self, pod_key: str) -> dict[PortKey, str]:
        with self._lock:
            placed = self._placed.get(pod_key)
            if placed is None or placed.shard is None:
                return self.local.failures(pod_key)
            return dict(placed.failed) if placed.shard.alive() else {}

    def ready(self, pod_key: str) -> bool:
        with self._lock:
            placed = self._placed.get(pod_key)
            if placed is None or placed.shard is None:
                return self.local.ready(pod_key)
            return placed.shard.alive() and not placed.failed

    def pods(self) -> list[str]:
        with self._lock:
            remote = [k for k, p in self._placed.items() if p.shard is not None and p.shard.alive()]
        return sorted([*self.local.pods(), *remote])

    def placement(self, pod_key: str) -> int | None:
        """The shard index serving the pod, None for the agent's own server (or not served)."""
        with self._lock:
            placed = self._placed.get(pod_key)
            return placed.shard.index if placed is not None and placed.shard is not None else None

    # -- counters -----------------------------------------------------------------------------------
    def request_counts(self) -> dict[str, int]:
        out = self.local.request_counts()
        for stats in self._shard_stats():
            out.update({pod: int(n) for pod, n in stats["requests"].items()})
        return out

    def request_stats(self) -> dict[str, tuple[float, float]]:
        out = self.local.request_stats()
        for stats in self._shard_stats():
            busy = stats["busy"]
            out.update({pod: (float(n), float(busy.get(pod, 0.0))) for pod, n in stats["requests"].items()})
        return out

    def _shard_stats(self) -> list[dict[str, Any]]:
        with self._lock:
            shards = [s for s in self.shards if s.alive()]
        out = []
        for shard in shards:
            with contextlib.suppress(ShardGone, RuntimeError):
                out.append(shard.request("stats"))
        return out

    # -- placement ----------------------------------------------------------------------------------
    @staticmethod
    def _usable(shard: RemoteShard | None) -> bool:
        return shard is None or shard.alive()

    def _new_shard(self) -> RemoteShard:
        shard = RemoteShard(self._cluster, len(self.shards) + 1)
        self.shards.append(shard)
        log.info("workload shard %d started (pid %d): the node agent's own descriptors are taken",
                 shard.index, shard.proc.pid)
        threading.Thread(target=self._watch, args=(shard,), name=f"netsim-workload-shard-{shard.index}",
                         daemon=True).start()
        return shard

    def _watch(self, shard: RemoteShard) -> None:
        """Wait for the shard's exit; unless it was stopped, serve its pods again elsewhere."""
        code = shard.proc.wait()
        with self._lock:
            if self._stopped or shard.gone == "stopped":
                return
            shard.gone = shard.gone or f"workload shard {shard.index} (pid {shard.proc.pid}) exited ({code})"
            orphans = [(key, p) for key, p in self._placed.items() if p.shard is shard]
            log.error("%s: serving its %d pods again", shard.gone, len(orphans))
            for key, placed in orphans:
                self._unserve_locked(key)
                try:
                    self.serve(key, placed.node, placed.netns, placed.ports)
                except Exception:  # the pod reads as not listening; the kubelet's syncs see it
                    log.exception("%s: cannot serve its ports again", key)

    def _serve_on(self, shard: RemoteShard | None, pod_key: str, node: str, netns: str,
                  ports: list[tuple[int, str]], *, last_resort: bool = False) -> dict[PortKey, bool] | None:
        """Serve the pod on `shard` (None: the agent's own server) and record it there; None when that
        process is short of descriptors for it (the pod is then not served there)."""
        if shard is None:
            result = self.local.serve(pod_key, node, netns, ports)
            if self.local.short_of_descriptors(pod_key) and not last_resort:
                self.local.unserve(pod_key)
                self._local_full = True
                return None
            self._place(pod_key, _Placed(None, netns, node, ports))
            return result
        try:
            answer = shard.request("serve", pod=pod_key, node=node, netns=netns, ports=[list(p) for p in ports])
        except ShardGone:
            return None
        if answer["short"]:
            shard.full = True
            with contextlib.suppress(ShardGone, RuntimeError):
                shard.request("unserve", pod=pod_key)
            return None
        failed = {(int(port), str(proto)): why for port, proto, why in answer["failed"]}
        self._place(pod_key, _Placed(shard, netns, node, ports, _ports_of(answer["listening"]), failed))
        return {(int(port), str(proto)): bool(ok) for port, proto, ok in answer["result"]}

    def _place(self, pod_key: str, placed: _Placed) -> None:
        old = self._placed.get(pod_key)
        self._placed[pod_key] = placed
        if old is not None:  # served again where it was: its counts stay
            return
        if placed.shard is not None:
            placed.shard.pods += 1
        _, n = self._netns.get(placed.netns, (None, 0))
        self._netns[placed.netns] = (placed.shard, n + 1)

    def _unserve_locked(self, pod_key: str) -> bool:
        placed = self._placed.pop(pod_key, None)
        if placed is None:
            return self.local.unserve(pod_key)
        host, n = self._netns.get(placed.netns, (None, 1))
        if n <= 1:
            self._netns.pop(placed.netns, None)
        else:
            self._netns[placed.netns] = (host, n - 1)
        if placed.shard is None:
            self._local_full = False
            return self.local.unserve(pod_key)
        placed.shard.pods -= 1
        placed.shard.full = False
        try:
            return bool(placed.shard.request("unserve", pod=pod_key)["ok"])
        except (ShardGone, RuntimeError):
            return True  # its sockets went with its process
