"""Traffic load from pods, nodes or hosts to a target, from one thread: real sockets in the sources' netns.

Two shapes, as load tools offer them:

- **open loop** (`rate`): request i is due at start + i/rate whatever happened to the earlier ones, so a
  stalled backend piles up in-flight requests instead of slowing the client down. Latency counts from the
  moment a request was *due*, not from when the loop got round to it (wrk2's answer to coordinated
  omission), so a slow client shows as latency rather than hiding it.
- **closed loop** (`connections`): N clients, each sends its next request when the previous one ended
  (optionally paced so that together they stay under `rate`). Over TCP each client keeps one persistent
  HTTP/1.1 connection (netsim.load.keepalive); over UDP each sends its next datagram.

A TCP request is one connection: connect, read the workload server's JSON identity line (which names the
pod that answered), close. That is what the workload server speaks; it also means every request goes
through the Service's load balancing afresh, as a client without keep-alive does. A UDP request is one
datagram and its answer. Outcomes:

- ok: the identity arrived; `endpoint` is the pod (or node) that sent it;
- refused: ECONNREFUSED / EHOSTUNREACH / ENETUNREACH (a RST, kube-proxy's REJECT of a Service with no
  endpoints, an ICMP unreachable);
- reset: the connection was reset (ECONNRESET) or closed before the answer (a pod killed mid-request);
- timeout: nothing by `timeout` seconds (a DROP, a blackholed path, an overloaded backend);
- error: anything else (fd exhaustion, a source namespace that vanished), with its text.

Client sockets are created inside each source namespace in batches through `Kernel.call_in` (a socket keeps
its namespace for life), so the per-request cost is a connect, one epoll registration and a read. In-flight
deadlines sit in a queue in launch order (one timeout for all requests, so the queue is sorted by deadline
and expiry is O(expired)).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

from netsim.kernel.api import Kernel
from netsim.load.report import Outcome, Recorder
from netsim.workload import identity

REFUSED = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH}
RESET = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}
UDP_PAYLOAD = b"netsim-load\n"
POOL_BATCH = 256
MAX_IN_FLIGHT = 30000
PROTOCOLS = ("TCP", "UDP")


@dataclass(frozen=True)
class Source:
    label: str
    netns: str


@dataclass(frozen=True)
class Target:
    ip: str
    port: int
    protocol: str = "TCP"


@dataclass(eq=False)
class _Req:
    sock: socket.socket
    due: float  # when it was due (monotonic); latency counts from here
    deadline: float
    slot: int = -1  # closed loop: which client sent it
    buf: bytes = b""
    done: bool = False
    half_closed: bool = True  # TCP: set False until the connection is up and our FIN is sent


class _Pool:
    """Unconnected non-blocking sockets made inside one namespace, handed out one by one."""

    def __init__(self, kernel: Kernel, netns: str, kind: int):
        self.kernel, self.netns, self.kind = kernel, netns, kind
        self.free: deque[socket.socket] = deque()

    def take(self) -> socket.socket:
        if not self.free:
            self.fill(POOL_BATCH)
        return self.free.popleft()

    def fill(self, n: int) -> None:
        kind = self.kind

        def make() -> list[socket.socket]:
            out = []
            try:
                for _ in range(n):
                    s = socket.socket(socket.AF_INET, kind)
                    s.setblocking(False)
                    out.append(s)
            except OSError:
                if not out:
                    raise
            return out
        self.free.extend(self.kernel.call_in(self.netns, make))

    def close(self) -> None:
        while self.free:
            self.free.popleft().close()


def raise_fd_limit() -> int:
    """Lift the soft open-file limit to the hard one: every in-flight request holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run_load(kernel: Kernel, sources: list[Source], target: Target, *, duration: float,
             rate: float | None = None, connections: int | None = None, timeout: float = 1.0,
             stop: threading.Event | None = None, workers: int | None = None) -> Recorder:
    """A load run over `workers` client threads (default: one per CPU, at most 4), merged into one Recorder.

    Most of a request's cost is the kernel's (connect and close carry the SYN and FIN through veths, NAT
    and the server's socket in the calling thread's softirq), and Python releases the GIL around those
    system calls, so client threads add real throughput on a multi-core machine. Each thread gets an
    equal share of the rate (phase-shifted so the sends interleave) or of the connections."""
    k = workers or max(1, min(4, os.cpu_count() or 1))
    if connections is not None:
        k = min(k, connections)
    stop = stop or threading.Event()
    runs: list = []
    for i in range(k):
        share_conn = None if connections is None else connections // k + (1 if i < connections % k else 0)
        share_rate = None if rate is None else rate / k
        rotated = sources[i % len(sources):] + sources[:i % len(sources)]
        if share_conn is not None and target.protocol == "TCP":
            from netsim.load.keepalive import KeepAliveRun
            runs.append(KeepAliveRun(kernel, rotated, target, connections=share_conn, duration=duration,
                                     rate=share_rate, timeout=timeout, stop=stop))
            continue
        runs.append(LoadRun(kernel, rotated, target,
                            duration=duration, rate=share_rate, connections=share_conn, timeout=timeout,
                            stop=stop, phase=(i / k) / share_rate if share_rate and connections is None else 0.0))
    if k == 1:
        return runs[0].run()
    results: list[Recorder | BaseException] = [RuntimeError("client thread did not finish")] * k

    def go(i: int) -> None:
        try:
            results[i] = runs[i].run()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread below
            results[i] = exc
            stop.set()
    t0 = time.monotonic()
    for r in runs:
        r.t0_shared = t0
    threads = [threading.Thread(target=go, args=(i,), name=f"netsim-load-{i}", daemon=True) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = Recorder(duration, runs[0].rec.mode)
    for res in results:
        if isinstance(res, BaseException):
            raise res
        merged.merge(res)
    return merged


class LoadRun:
    """One run; `run()` blocks for about `duration` (+ `timeout` for the stragglers) and returns a Recorder."""

    def __init__(self, kernel: Kernel, sources: list[Source], target: Target, *, duration: float,
                 rate: float | None = None, connections: int | None = None, timeout: float = 1.0,
                 stop: threading.Event | None = None, phase: float = 0.0):
        if not sources:
            raise ValueError("a load needs at least one source")
        if duration <= 0 or timeout <= 0:
            raise ValueError("duration and timeout must be positive")
        if rate is None and connections is None:
            raise ValueError("give a rate (open loop) or a number of connections (closed loop)")
        if rate is not None and rate <= 0:
            raise ValueError("the rate must be positive")
        if connections is not None and connections < 1:
            raise ValueError("connections must be at least 1")
        if target.protocol not in PROTOCOLS:
            raise ValueError(f"load speaks {' and '.join(PROTOCOLS)}, not {target.protocol}")
        self.kernel = kernel
        self.sources = sources
        self.target = target
        self.duration, self.rate, self.connections, self.timeout = duration, rate, connections, timeout
        self.stop = stop or threading.Event()
        kind = socket.SOCK_STREAM if target.protocol == "TCP" else socket.SOCK_DGRAM
        self.pools = [_Pool(kernel, s.netns, kind) for s in sources]
        self.sel = selectors.DefaultSelector()
        self.queue: deque[_Req] = deque()
        self.in_flight = 0
        self.next_source = 0
        self.rec = Recorder(duration, "closed" if connections else "open")
        self.t0 = 0.0
        self.t0_shared: float | None = None  # set by run_load so that every client thread counts from one start
        self.phase = phase

    # -- the run ----------------------------------------------------------------------------------------
    def run(self) -> Recorder:
        raise_fd_limit()
        try:
            for pool in self.pools:
                try:
                    pool.fill(min(POOL_BATCH, int((self.rate or 100) * 0.2 / len(self.pools)) + 8))
                except Exception:  # noqa: BLE001 - a missing namespace: each request then records why
                    pass
            self.t0 = self.t0_shared if self.t0_shared is not None else time.monotonic()
            end = self.t0 + self.duration
            if self.connections:
                self._closed_loop(end)
            else:
                self._open_loop(end)
            drain = time.monotonic() + self.timeout + 0.5
            while self.in_flight and time.monotonic() < drain:
                self._poll(time.monotonic() + 0.05)
        finally:
            for req in list(self.queue):
                if not req.done:
                    self._end(req, "error", error="load run stopped")
            self.sel.close()
            for pool in self.pools:
                pool.close()
        return self.rec

    def _open_loop(self, end: float) -> None:
        assert self.rate is not None
        start = self.t0 + self.phase
        total = int(round(self.rate * self.duration))
        sent = 0
        while sent < total and not self.stop.is_set():
            now = time.monotonic()
            while sent < total and start + sent / self.rate <= now:
                self._launch(start + sent / self.rate)
                sent += 1
            nxt = start + sent / self.rate if sent < total else end
            self._poll(min(nxt, now + 0.05))

    def _closed_loop(self, end: float) -> None:
        assert self.connections is not None
        gap = self.connections / self.rate if self.rate else 0.0
        self.slot_next = [self.t0 + i * (gap / self.connections if gap else 0.0) for i in range(self.connections)]
        self.slot_busy = [False] * self.connections
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= end:
                break
            for i in range(self.connections):
                if not self.slot_busy[i] and self.slot_next[i] <= now:
                    self.slot_busy[i] = True
                    self.slot_next[i] = max(now, self.slot_next[i] + gap)
                    self._launch(now, slot=i)
            waits = [t for i, t in enumerate(self.slot_next) if not self.slot_busy[i]]
            self._poll(min([end, now + 0.05, *waits]))

    # -- one request ------------------------------------------------------------------------------------
    def _launch(self, due: float, slot: int = -1) -> None:
        pool = self.pools[self.next_source]
        self.next_source = (self.next_source + 1) % len(self.pools)
        now = time.monotonic()
        if self.in_flight >= MAX_IN_FLIGHT:
            self.rec.add(Outcome(due - self.t0, "error", error="client overloaded: too many requests in flight"))
            self._slot_free(slot)
            return
        try:
            sock = pool.take()
        except Exception as exc:  # the source namespace is gone, or no fds left
            self.rec.add(Outcome(due - self.t0, "error", error=f"cannot open a socket in {pool.netns}: {exc}"))
            self._slot_free(slot)
            return
        req = _Req(sock, due, now + self.timeout, slot)
        self.in_flight += 1
        self.queue.append(req)
        try:
            events = selectors.EVENT_READ
            if self.target.protocol == "TCP":
                rc = sock.connect_ex((self.target.ip, self.target.port))
                if rc not in (0, errno.EINPROGRESS, errno.EAGAIN):
                    raise OSError(rc, errno.errorcode.get(rc, str(rc)))
                # The request sends nothing: once connected, a FIN says so, and the workload server (which
                # gives a silent client a moment to start an HTTP request) answers the identity at once.
                req.half_closed = False
                events |= selectors.EVENT_WRITE
            else:
                sock.connect((self.target.ip, self.target.port))
                sock.send(UDP_PAYLOAD)
            self.sel.register(sock, events, req)
        except OSError as exc:
            self._failed(req, exc)

    def _poll(self, until: float) -> None:
        now = time.monotonic()
        for key, mask in self.sel.select(timeout=max(0.0, until - now)):
            req = key.data
            if req.done:
                continue
            if mask & selectors.EVENT_WRITE and not req.half_closed:
                req.half_closed = True
                err = req.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # reading it clears it
                if err:
                    self._failed(req, OSError(err, os.strerror(err)))
                    continue
                with contextlib.suppress(OSError):
                    req.sock.shutdown(socket.SHUT_WR)
                self.sel.modify(req.sock, selectors.EVENT_READ, req)
            if mask & selectors.EVENT_READ or req.half_closed:
                self._readable(req)
        now = time.monotonic()
        q = self.queue
        while q and (q[0].done or q[0].deadline <= now):
            req = q.popleft()
            if not req.done:
                self._end(req, "timeout")

    def _readable(self, req: _Req) -> None:
        try:
            data = req.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._failed(req, exc)
            return
        if self.target.protocol == "UDP":
            self._answered(req, data)
            return
        req.buf += data
        if b"\n" in req.buf:
            self._answered(req, req.buf)
        elif not data:
            self._end(req, "reset", error="closed before the answer")

    def _answered(self, req: _Req, data: bytes) -> None:
        ident = identity.decode(data)
        if ident is None:
            self._end(req, "error", error="the answer is not a netsim identity")
            return
        self._end(req, "ok", endpoint=ident.get("pod") or ident.get("node"))

    def _failed(self, req: _Req, exc: OSError) -> None:
        code = exc.errno or 0
        if code in REFUSED:
            self._end(req, "refused")
        elif code in RESET:
            self._end(req, "reset", error=None)
        else:
            self._end(req, "error", error=exc.strerror or str(exc))

    def _end(self, req: _Req, outcome: str, *, endpoint: str | None = None, error: str | None = None) -> None:
        req.done = True
        self.in_flight -= 1
        done = time.monotonic()
        try:
            self.sel.unregister(req.sock)
        except (KeyError, ValueError):
            pass
        req.sock.close()
        self.rec.add(Outcome(req.due - self.t0, outcome, (done - req.due) * 1000.0, endpoint, error))
        self._slot_free(req.slot)

    def _slot_free(self, slot: int) -> None:
        if slot >= 0:
            self.slot_busy[slot] = False
