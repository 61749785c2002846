"""Sockets opened inside network namespaces, and one selector thread that serves many of them.

A socket stays in the namespace it was created in, whichever thread uses it later, so a socket for
namespace X is created on the kernel's namespace thread (`Kernel.call_in(X, ...)`) and can then be read
and written from anywhere. Two things build on that:

- `open_in_netns`: create one configured, non-blocking socket inside a namespace (closed again when a
  setup step fails), with the errors turned into a `KernelError` that names the namespace. Used by the
  trace listeners and packet captures.
- `NetnsServer`: the skeleton shared by the cluster DNS responder and the workload server -- one daemon
  thread, one selector over sockets from any number of namespaces, a wake pipe so that `serve` from
  another thread is picked up at once, a start/stop lifecycle (stop is final), and bookkeeping of
  accepted connections with an idle deadline. Subclasses open their sockets, register them with a
  `data` object of their own, and handle readiness in `_on_ready`; the protocol stays theirs.

No input may end the loop: an exception from one handler is logged and counted, the connection it
came from is closed, and the loop goes on. Should the thread end anyway, `health()` says so (and why),
so the daemon can report a dead server instead of a silent one.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from netsim.kernel.api import Kernel, KernelError

log = logging.getLogger(__name__)

SO_RCVBUFFORCE = 33  # linux/asm-generic/socket.h; not exported by Python's socket module


def set_rcvbuf(sock: socket.socket, size: int) -> None:
    """Receive buffer of `size` bytes: beyond net.core.rmem_max when allowed (root), capped otherwise."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def open_in_netns(kernel: Kernel, ns: str, family: int, kind: int, proto: int = 0, *, what: str,
                  rcvbuf: int | None = None,
                  setup: Callable[[socket.socket], None] | None = None) -> socket.socket:
    """A non-blocking socket(family, kind, proto) created inside `ns`.

    Inside the namespace the receive buffer is set to `rcvbuf` (when given), then `setup(sock)` runs
    (bind, options, memberships: whatever must happen there); the socket is closed if any step fails.
    An OSError becomes `KernelError("<ns>: cannot <what>: <reason>", errno)`.
    """
    def _open() -> socket.socket:
        sock = socket.socket(family, kind, proto)
        try:
            if rcvbuf is not None:
                set_rcvbuf(sock, rcvbuf)
            if setup is not None:
                setup(sock)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock
    try:
        return kernel.call_in(ns, _open)
    except OSError as exc:
        raise KernelError(f"{ns}: cannot {what}: {exc.strerror}", exc.errno) from None


@dataclass(eq=False)
class Conn:
    """An accepted connection the server keeps until it closes or its `deadline` (time.monotonic()) passes.

    Subclasses add their protocol state; `closed` tells a handler that a connection went away earlier in
    the same batch of events."""

    sock: socket.socket
    deadline: float
    closed: bool = False


class NetnsServer:
    """One selector thread over sockets from many namespaces; subclass it for a protocol.

    Subclasses implement `_on_ready(data, mask)` (a registered socket is ready) and `_unserve_all_locked()`
    (close every served socket, called by `stop`), and may set `thread_name`, `stopped_message` (the
    RuntimeError of `start` after `stop`) and `sweep_interval` (seconds between idle-connection sweeps;
    0: after every wake-up). Everything the loop touches is guarded by `self._lock` (re-entrant), so
    `serve`-like methods may be called from any thread, before or after `start`.
    """

    thread_name = "netsim-netns-server"
    stopped_message = "the server has been stopped"
    sweep_interval = 0.0

    def __init__(self, kernel: Kernel):
        self._kernel = kernel
        self._lock = threading.RLock()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._conns: dict[int, Conn] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._died: str | None = None
        self.handler_errors = 0
        self.last_handler_error: str | None = None

    # -- hooks --------------------------------------------------------------------------------------
    def _on_ready(self, data: Any, mask: int) -> None:
        """Handle readiness of the socket registered with `data` (called with the lock held)."""
        raise NotImplementedError

    def _next_timer(self) -> float:
        """Seconds until the subclass's next timer (`_on_timers`) is due; the loop wakes at least every second."""
        return 1.0

    def _on_timers(self, now: float) -> None:
        """Run the subclass's due timers (called after every wake-up, with the lock held)."""

    def _unserve_all_locked(self) -> None:
        """Close every served socket (called with the lock held, once the loop has ended)."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the loop thread; a no-op when running. Raises RuntimeError after `stop`."""
        with self._lock:
            if self._closed:
                raise RuntimeError(self.stopped_message)
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the loop and close every socket; the server cannot be restarted afterwards. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._stopping = True
            thread, self._thread = self._thread, None
        self._wake()
        if thread is not None:
            thread.join(timeout=10)
        with self._lock:
            self._unserve_all_locked()
            for conn in list(self._conns.values()):
                self._close_conn(conn)
            self._sel.close()
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            self._closed = True

    def health(self) -> dict[str, Any]:
        """{"state": running | dead | stopped | not started, "error": why it died, "handlerErrors": count of
        inputs whose handler raised (each answered with nothing, the server went on), "lastHandlerError"}."""
        with self._lock:
            thread = self._thread
            if self._died is not None:
                state = "dead"
            elif self._closed or self._stopping:
                state = "stopped"
            elif thread is None:
                state = "not started"
            else:
                state = "running" if thread.is_alive() else "dead"
            return {"state": state, "error": self._died if state == "dead" else None,
                    "handlerErrors": self.handler_errors, "lastHandlerError": self.last_handler_error}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- sockets and connections --------------------------------------------------------------------
    def _unregister_close(self, sock: socket.socket) -> None:
        """Forget `sock` in the selector (if it is there) and close it."""
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def _add_conn(self, conn: Conn, events: int = selectors.EVENT_READ) -> None:
        """Keep `conn` (its socket non-blocking) and watch it for `events`."""
        self._conns[id(conn)] = conn
        self._sel.register(conn.sock, events, conn)

    def _close_conn(self, conn: Conn) -> None:
        if not conn.closed:
            conn.closed = True
            self._conns.pop(id(conn), None)
            self._unregister_close(conn.sock)

    def _expire_conns(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            self._close_conn(conn)

    # -- the loop -----------------------------------------------------------------------------------
    def _wake(self) -> None:
        """Make the loop's select() return, so it sees new sockets or the stop request now."""
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # the pipe is full (a wake-up is pending anyway) or already closed
            pass

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # never expected: recorded for health(), so a dead server is visible
            self._died = f"{type(exc).__name__}: {exc}"
            log.exception("%s died", self.thread_name)
            return
        if not self._stopping:
            self._died = "the loop ended without a stop request"

    def _handler_failed(self, data: Any, exc: Exception) -> None:
        self.handler_errors += 1
        self.last_handler_error = f"{type(exc).__name__}: {exc}"
        if self.handler_errors <= 10:  # the first few with a traceback; a flood must not flood the log
            log.error("%s: handler failed (the server goes on)", self.thread_name, exc_info=exc)
        if isinstance(data, Conn):
            self._close_conn(data)

    def _loop(self) -> None:
        next_sweep = time.monotonic() + self.sweep_interval
        while True:
            with self._lock:
                if self._stopping:
                    return
            try:
                events = self._sel.select(timeout=min(1.0, max(0.0, self._next_timer())))
            except (OSError, ValueError):  # the selector was closed under us
                if self._stopping:
                    return
                continue
            with self._lock:
                if self._stopping:
                    return
                for key, mask in events:
                    data = key.data
                    try:
                        if data is None:
                            os.read(self._wake_r, 4096)
                        else:
                            self._on_ready(data, mask)
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as exc:  # one socket's trouble must never stop the server
                        if isinstance(data, Conn):
                            self._close_conn(data)
                        else:
                            log.debug("%s: %s", self.thread_name, exc)
                    except Exception as exc:  # nor one input's: a bug costs that input's answer
                        self._handler_failed(data, exc)
                now = time.monotonic()
                try:
                    self._on_timers(now)
                except Exception as exc:  # noqa: BLE001 - like a handler's: logged, counted, the loop goes on
                    self._handler_failed(None, exc)
                if now >= next_sweep:
                    next_sweep = now + self.sweep_interval
                    self._expire_conns(now)
