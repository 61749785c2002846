"""Load over persistent HTTP/1.1 connections: N clients, each with one keep-alive connection.

Each client sends `GET / HTTP/1.1`, waits for the whole response (Content-Length), and sends the next request
on the same connection: as soon as it has the answer (closed loop, what a connection-pooling HTTP client
does), or, with a `rate`, on its own fixed schedule of rate/N requests per second (open loop over persistent
connections, as wrk2 does: latency counts from when a request was due, so an answer that comes late delays
the next request and shows as latency instead of lowering the offered load). A connection therefore stays with the endpoint kube-proxy chose when it was opened (the
conntrack entry keeps the DNAT), so a rollout shows what it does to long-lived clients: their connection is
reset or stalls when its pod goes, and the client reconnects, landing on a live endpoint.

Outcomes per request: ok (a 1xx-3xx answer; the workload server's body is its identity JSON, naming the pod),
error (a 4xx/5xx answer, or an unreadable one), reset (the connection closed or was reset before the answer,
e.g. its pod was killed), refused (the reconnect was refused), timeout (no answer within `timeout`: the
connection is dropped and the next request reconnects). Latency runs from sending the request (for the first
request on a new connection: from connecting) to the last byte of the answer.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import threading
import time
from dataclasses import dataclass

from netsim.kernel.api import Kernel
from netsim.load.generator import REFUSED, RESET, Source, Target, _Pool
from netsim.load.report import Outcome, Recorder
from netsim.workload import identity

REQUEST = b"GET / HTTP/1.1\r\nHost: netsim-load\r\nUser-Agent: netsim-load\r\nAccept: */*\r\n\r\n"
MAX_RESPONSE = 1 << 20


@dataclass(eq=False)
class _Client:
    pool: _Pool
    sock: socket.socket | None = None
    state: str = "idle"  # idle | connecting | waiting
    due: float = 0.0
    deadline: float = 0.0
    next_at: float = 0.0
    buf: bytes = b""


def parse_response(buf: bytes) -> tuple[int, bytes, int] | None:
    """(status, body, bytes used) of the first complete HTTP/1.1 response in `buf`, or None if incomplete.
    ValueError when it is not HTTP."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buf) > 64 * 1024:
            raise ValueError("response head too long")
        return None
    lines = buf[:head_end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > MAX_RESPONSE:
        raise ValueError("response body too large")
    end = head_end + 4 + length
    if len(buf) < end:
        return None
    return int(parts[1]), buf[head_end + 4:end], end


class KeepAliveRun:
    def __init__(self, kernel: Kernel, sources: list[Source], target: Target, *, connections: int,
                 duration: float, rate: float | None = None, timeout: float = 1.0,
                 stop: threading.Event | None = None):
        self.target = target
        self.duration, self.timeout = duration, timeout
        self.gap = connections / rate if rate else 0.0
        self.stop = stop or threading.Event()
        pools = [_Pool(kernel, s.netns, socket.SOCK_STREAM) for s in sources]
        self.pools = pools
        self.clients = [_Client(pools[i % len(pools)]) for i in range(connections)]
        self.sel = selectors.DefaultSelector()
        self.rec = Recorder(duration, "open" if rate else "closed")
        self.t0 = 0.0
        self.t0_shared: float | None = None

    def run(self) -> Recorder:
        self.t0 = self.t0_shared if self.t0_shared is not None else time.monotonic()
        end = self.t0 + self.duration
        for i, c in enumerate(self.clients):
            c.next_at = self.t0 + (i * self.gap / len(self.clients) if self.gap else 0.0)
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= end and all(c.state == "idle" for c in self.clients):
                    break
                if now >= end + self.timeout + 0.5:
                    break
                if now < end:
                    for c in self.clients:
                        if c.state == "idle" and c.next_at <= now:
                            self._send(c, now)
                self._poll(now, end)
        finally:
            for c in self.clients:
                if c.state != "idle":
                    self._end(c, "error", error="load run stopped")
                self._drop(c)
            self.sel.close()
            for pool in self.pools:
                pool.close()
        return self.rec

    # -- one client ---------------------------------------------------------------------------------------
    def _send(self, c: _Client, now: float) -> None:
        # On a schedule (rate), the request was due at next_at, however late the previous answer made it.
        c.due = c.next_at if self.gap else now
        c.deadline, c.buf = now + self.timeout, b""
        if c.sock is None:
            try:
                c.sock = c.pool.take()
            except Exception as exc:  # noqa: BLE001 - the source namespace is gone, or no fds left
                self.rec.add(Outcome(now - self.t0, "error", error=f"cannot open a socket in {c.pool.netns}: {exc}"))
                c.next_at = now + max(self.gap, 0.01)
                return
            rc = c.sock.connect_ex((self.target.ip, self.target.port))
            if rc not in (0, errno.EINPROGRESS, errno.EAGAIN):
                c.state = "connecting"
                self._failed(c, OSError(rc, os.strerror(rc)))
                return
            c.state = "connecting"
            self.sel.register(c.sock, selectors.EVENT_WRITE, c)
            return
        c.state = "waiting"
        try:
            c.sock.send(REQUEST)
        except OSError as exc:
            self._failed(c, exc)

    def _poll(self, now: float, end: float) -> None:
        waits = [c.deadline for c in self.clients if c.state != "idle"]
        waits += [c.next_at for c in self.clients if c.state == "idle" and now < end]
        until = min([*waits, end, now + 0.05])
        for key, mask in self.sel.select(timeout=max(0.0, until - now)):
            c = key.data
            if c.state == "connecting" and mask & selectors.EVENT_WRITE:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._failed(c, OSError(err, os.strerror(err)))
                    continue
                c.state = "waiting"
                self.sel.modify(c.sock, selectors.EVENT_READ, c)
                try:
                    c.sock.send(REQUEST)
                except OSError as exc:
                    self._failed(c, exc)
            elif mask & selectors.EVENT_READ:
                self._readable(c)
        now = time.monotonic()
        for c in self.clients:
            if c.state != "idle" and c.deadline <= now:
                self._end(c, "timeout")
                self._drop(c)  # a connection that stalls is given up; the next request reconnects

    def _readable(self, c: _Client) -> None:
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._failed(c, exc)
            return
        if not data:
            self._end(c, "reset", error=None)
            self._drop(c)
            return
        if c.state != "waiting":  # bytes nobody asked for: drop the connection
            self._drop(c)
            return
        c.buf += data
        try:
            parsed = parse_response(c.buf)
        except ValueError as exc:
            self._end(c, "error", error=str(exc))
            self._drop(c)
            return
        if parsed is None:
            return
        status, body, _used = parsed
        if status >= 400:
            self._end(c, "error", error=f"HTTP {status}")
            return
        ident = identity.decode(body)
        self._end(c, "ok", endpoint=(ident.get("pod") or ident.get("node")) if ident else None)

    def _failed(self, c: _Client, exc: OSError) -> None:
        code = exc.errno or 0
        if code in REFUSED and c.state == "connecting":
            self._end(c, "refused")
        elif code in RESET or code in REFUSED:
            self._end(c, "reset")
        else:
            self._end(c, "error", error=exc.strerror or str(exc))
        self._drop(c)

    def _end(self, c: _Client, outcome: str, *, endpoint: str | None = None, error: str | None = None) -> None:
        now = time.monotonic()
        self.rec.add(Outcome(c.due - self.t0, outcome, (now - c.due) * 1000.0, endpoint, error))
        c.state = "idle"
        c.buf = b""
        c.next_at = c.next_at + self.gap if self.gap else now

    def _drop(self, c: _Client) -> None:
        if c.sock is not None:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
            c.sock = None
