"""The shared namespace-socket plumbing, without root: FakeKernel runs `call_in` in the current namespace,
and socketpairs stand in for sockets opened inside pods."""

from __future__ import annotations

import errno
import selectors
import socket
import time

import pytest

from netsim.kernel.api import KernelError
from netsim.kernel.fake import FakeKernel
from netsim.netns_sockets import Conn, NetnsServer, open_in_netns


def _kernel() -> FakeKernel:
    k = FakeKernel()
    k.netns_create("pod")
    return k


def test_open_in_netns_configures_a_non_blocking_socket_in_the_namespace():
    k = _kernel()
    sock = open_in_netns(k, "pod", socket.AF_INET, socket.SOCK_DGRAM, rcvbuf=1 << 16,
                         setup=lambda s: s.bind(("127.0.0.1", 0)), what="listen")
    try:
        assert ("call_in", ("pod",)) in k.calls
        assert not sock.getblocking() and sock.getsockname()[0] == "127.0.0.1"
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 16
    finally:
        sock.close()


def test_open_in_netns_closes_the_socket_and_names_the_namespace_on_failure():
    made: list[socket.socket] = []

    def _setup(s: socket.socket) -> None:
        made.append(s)
        raise OSError(errno.EADDRINUSE, "Address already in use")
    with pytest.raises(KernelError) as exc:
        open_in_netns(_kernel(), "pod", socket.AF_INET, socket.SOCK_DGRAM, setup=_setup, what="bind port 80")
    assert str(exc.value).startswith("pod: cannot bind port 80: Address already in use")
    assert made[0].fileno() == -1


class _Echo(NetnsServer):
    """Echoes what arrives on registered sockets; counts the stop-time unserve."""

    thread_name = "netsim-test-echo"
    stopped_message = "echo stopped"

    def __init__(self, kernel: FakeKernel):
        super().__init__(kernel)
        self.socks: list[socket.socket] = []
        self.unserved = 0

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self.socks.append(sock)
            self._sel.register(sock, selectors.EVENT_READ, sock)
        self._wake()

    def _on_ready(self, data, mask) -> None:
        if isinstance(data, Conn):
            data.sock.recv(100)
            return
        data.send(data.recv(100))

    def _unserve_all_locked(self) -> None:
        self.unserved += 1
        for s in self.socks:
            self._unregister_close(s)


def _recv(sock: socket.socket, timeout: float = 3.0) -> bytes:
    sock.settimeout(timeout)
    return sock.recv(100)


def test_server_serves_sockets_added_while_running_and_stop_is_final():
    ours, theirs = socket.socketpair()
    srv = _Echo(FakeKernel())
    with srv:
        srv.start()  # a second start is a no-op
        srv.add(ours)
        theirs.send(b"ping")
        assert _recv(theirs) == b"ping"
    assert srv.unserved == 1 and ours.fileno() == -1
    srv.stop()  # idempotent
    assert srv.unserved == 1
    with pytest.raises(RuntimeError, match="echo stopped"):
        srv.start()
    theirs.close()


def test_connections_are_closed_after_their_deadline_and_at_stop():
    srv = _Echo(FakeKernel())
    idle_ours, idle_theirs = socket.socketpair()
    live_ours, live_theirs = socket.socketpair()
    with srv:
        with srv._lock:
            srv._add_conn(Conn(idle_ours, time.monotonic() - 1))
            live = Conn(live_ours, time.monotonic() + 3600)
            srv._add_conn(live)
        srv._wake()
        assert _recv(idle_theirs) == b""  # closed by the sweep: EOF on the other end
        assert not live.closed
    assert live.closed and live_ours.fileno() == -1
    for s in (idle_theirs, live_theirs):
        s.close()


class _Fragile(_Echo):
    """Raises on input b"boom" (a handler bug) and echoes anything else."""

    def _on_ready(self, data, mask) -> None:
        got = data.recv(100)
        if got == b"boom":
            raise ValueError("handler bug")
        data.send(got)


def test_a_handler_bug_costs_one_input_not_the_server():
    ours, theirs = socket.socketpair()
    srv = _Fragile(FakeKernel())
    assert srv.health()["state"] == "not started"
    with srv:
        srv.add(ours)
        theirs.send(b"boom")
        time.sleep(0.2)
        theirs.send(b"ping")
        assert _recv(theirs) == b"ping"
        h = srv.health()
        assert h["state"] == "running" and h["handlerErrors"] == 1 and "handler bug" in h["lastHandlerError"]
    assert srv.health()["state"] == "stopped"
    theirs.close()


def test_a_dead_loop_is_reported_by_health(monkeypatch):
    srv = _Echo(FakeKernel())

    def broken(now):
        raise RuntimeError("sweep bug")
    monkeypatch.setattr(srv, "_expire_conns", broken)
    srv.start()
    deadline = time.monotonic() + 5
    while srv.health()["state"] != "dead" and time.monotonic() < deadline:
        srv._wake()
        time.sleep(0.05)
    h = srv.health()
    assert h["state"] == "dead" and "sweep bug" in h["error"]
    srv.stop()
