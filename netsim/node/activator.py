"""Knative's activator, emulated: a TCP proxy inside one node's network namespace that holds requests for a
revision with no ready pod until one is ready, then forwards them.

Knative's activator (knative/serving cmd/activator, pkg/activator/handler) sits in a revision's data path
while the revision is scaled to zero (or, in Knative, at low scale): it counts the requests it holds, reports
them to the autoscaler (which scales the revision from zero at once), waits for the revision's first ready
endpoint (its throttler's capacity), then proxies the request to it; a request that waits longer than the
revision's timeoutSeconds fails. Here:

- one listening socket per Knative Service, on `<node IP>:<port>` (ports from 8012, the activator's HTTP
  port), inside the node's netns: kube-proxy sends the Service's traffic there while the controller
  (netsim.controlplane.knative) puts the activator in the path;
- a connection is held (nothing read from it: the kernel keeps what the client sent) until `sync` gives its
  Service a backend, then the activator opens a connection from the node's netns to the pod and copies
  bytes both ways, half-closes included, so the client gets the pod's own answer (its identity names the pod);
- `counters()`: per Service the requests received, the request-seconds spent held (ongoing holds
  included) and how many are held now: the concurrency the autoscaler reads;
- `drain_events()`: one `ColdStart` per activation (the first held request forwarded), with how long the
  first request was held.

Each connection is served by a thread of its own (bounded by `max_held` + the forwarded ones): the activator
is in the path only around scale-from-zero, when few connections are open.
"""

from __future__ import annotations

import contextlib
import logging
import select
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from netsim.kernel.api import Kernel, KernelError
from netsim.netns_sockets import open_in_netns

log = logging.getLogger(__name__)
BACKLOG = 1024
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Route:
    """A Knative Service the activator fronts: `key` ns/name, its ready backends (IP, port), and how long a
    request may wait for one (the revision's timeoutSeconds)."""

    key: str
    backends: tuple[tuple[str, int], ...] = ()
    timeout: float = 300.0


@dataclass
class _Counters:
    requests: int = 0
    held_seconds: float = 0.0
    holding: dict[int, float] = field(default_factory=dict)  # hold id -> arrival (monotonic)
    cold_since: float | None = None  # the first request held while there was no backend
    cold_held: int = 0


class Activator:
    def __init__(self, kernel: Kernel, netns: str, ip: str, *, max_held: int = 1000):
        self.kernel, self.netns, self.ip = kernel, netns, ip
        self.max_held = max_held
        self._routes: dict[int, Route] = {}
        self._listeners: dict[int, socket.socket] = {}
        self._failed: dict[int, str] = {}
        self._counters: dict[str, _Counters] = {}
        self._events: list[tuple[str, str, str, float]] = []
        self._rr: dict[str, int] = {}
        self._cond = threading.Condition()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._next_id = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="netsim-activator", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for sock in self._listeners.values():
            with contextlib.suppress(OSError):
                sock.close()
        self._listeners.clear()
        self._wake_r.close()
        self._wake_w.close()

    def health(self) -> dict[str, Any]:
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return {"state": "dead", "error": self._error or "the activator thread ended"}
        if self._failed:
            port, err = next(iter(sorted(self._failed.items())))
            return {"state": "failing", "error": f"port {port}: {err}"}
        return {"state": "running", "error": None}

    # -- what the daemon tells it / reads from it -------------------------------------------------------
    def sync(self, routes: dict[int, Route]) -> None:
        """The Services to front, by port: listeners opened and closed to match; held requests of a Service
        that got a backend are released."""
        with self._cond:
            gone = [p for p in self._listeners if p not in routes]
            self._routes = dict(routes)
            self._cond.notify_all()
        for port in gone:
            sock = self._listeners.pop(port)
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            sock.close()
        for port in routes:
            if port in self._listeners:
                continue
            try:
                sock = open_in_netns(self.kernel, self.netns, socket.AF_INET, socket.SOCK_STREAM,
                                     what=f"listen on {self.ip}:{port}", setup=self._binder(port))
            except KernelError as exc:
                self._failed[port] = str(exc)
                continue
            self._failed.pop(port, None)
            self._listeners[port] = sock
            self._sel.register(sock, selectors.EVENT_READ, port)
        self._wake()

    def counters(self) -> dict[str, tuple[float, float, int]]:
        """Service -> (requests received, request-seconds held including ongoing holds, held now)."""
        now = time.monotonic()
        with self._cond:
            return {key: (float(c.requests), c.held_seconds + sum(now - t for t in c.holding.values()),
                          len(c.holding)) for key, c in self._counters.items()}

    def drain_events(self) -> list[tuple[str, str, str, float]]:
        """(service key, reason, message, milliseconds) recorded since the last call."""
        with self._cond:
            out, self._events = self._events, []
        return out

    # -- the server ------------------------------------------------------------------------------------
    def _binder(self, port: int) -> Any:
        def setup(sock: socket.socket) -> None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.ip, port))
            sock.listen(BACKLOG)
        return setup

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for key, _ in self._sel.select(timeout=1.0):
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                        continue
                    self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - reported through health()
            log.exception("activator failed")
            self._error = f"{type(exc).__name__}: {exc}"

    def _accept(self, lsock: socket.socket, port: int) -> None:
        for _ in range(64):
            try:
                conn, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, port, time.monotonic()), daemon=True,
                             name="netsim-activator-conn").start()

    def _serve(self, conn: socket.socket, port: int, arrival: float) -> None:
        try:
            self._handle(conn, port, arrival)
        except Exception:  # noqa: BLE001 - one connection's trouble stays its own
            log.exception("activator connection failed")
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _handle(self, conn: socket.socket, port: int, arrival: float) -> None:
        conn.setblocking(True)
        with self._cond:
            route = self._routes.get(port)
            if route is None:
                return
            c = self._counters.setdefault(route.key, _Counters())
            c.requests += 1
            if len(c.holding) >= self.max_held:
                return  # the activator's queue is full (Knative answers 503): the connection is closed
            self._next_id += 1
            hold = self._next_id
            c.holding[hold] = arrival
            cold = not route.backends
            if cold and c.cold_since is None:
                c.cold_since = arrival
            if cold:
                c.cold_held += 1
            deadline = arrival + route.timeout
            while not self._stop.is_set():
                route = self._routes.get(port)
                if route is None or route.backends or time.monotonic() >= deadline:
                    break
                self._cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            now = time.monotonic()
            c.holding.pop(hold, None)
            c.held_seconds += now - arrival
            backends = list(route.backends) if route is not None else []
            if not backends:
                return  # timed out (or the Service went): the client sees its connection closed
            i = self._rr.get(route.key, 0)
            self._rr[route.key] = i + 1
            order = backends[i % len(backends):] + backends[:i % len(backends)]
            report = cold and c.cold_since is not None
            if report:
                held_ms = (now - c.cold_since) * 1000.0
                count, c.cold_since, c.cold_held = c.cold_held, None, 0
        upstream = self._connect(order)
        if upstream is None:
            return
        if report:
            msg = (f"cold start: {count} request(s) held by the activator, the first for {held_ms:.0f} ms, "
                   f"until {upstream[1][0]}:{upstream[1][1]} was ready")
            with self._cond:
                self._events.append((route.key, "ColdStart", msg, held_ms))
        try:
            _relay(conn, upstream[0], route.timeout)
        finally:
            upstream[0].close()

    def _connect(self, order: list[tuple[str, int]]) -> tuple[socket.socket, tuple[str, int]] | None:
        for ip, port in order:
            try:
                up = self.kernel.call_in(self.netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            except Exception:  # noqa: BLE001 - the node's namespace is gone
                return None
            up.settimeout(CONNECT_TIMEOUT)
            try:
                up.connect((ip, port))
            except OSError:
                up.close()
                continue
            up.settimeout(None)
            return up, (ip, port)
        return None


def _relay(a: socket.socket, b: socket.socket, idle: float) -> None:
    """Copy bytes both ways until both sides have closed (a half-close is passed on) or nothing moved for
    `idle` seconds."""
    peer = {a: b, b: a}
    open_ = [a, b]
    while open_:
        ready, _, _ = select.select(open_, [], [], idle)
        if not ready:
            return
        for s in ready:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if data:
                try:
                    peer[s].sendall(data)
                except OSError:
                    return
            else:
                with contextlib.suppress(OSError):
                    peer[s].shutdown(socket.SHUT_WR)
                open_.remove(s)
