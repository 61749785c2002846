"""The streaming subresources (`pods/exec`, `pods/attach`, `pods/portforward`): which protocol the client
asked for, the upgrade's answer, and what runs on the upgraded connection.

Negotiation as the kubelet's streaming server does it (k8s.io/apimachinery pkg/util/httpstream
httpstream.go Handshake, pkg/util/wsstream): a WebSocket upgrade picks a subprotocol from
`Sec-WebSocket-Protocol`; an `Upgrade: SPDY/3.1` request picks one from its `X-Stream-Protocol-Version`
headers, and none in common is 403 Forbidden with the lists named. exec and attach over SPDY speak
remotecommand's v4 (streams typed by their `streamtype` header: error, stdin, stdout, stderr, resize;
the exit Status as JSON on the error stream, kubelet cri/streaming/remotecommand/httpstream.go); v5 is
answered as v4 (its only addition, the close signal, exists on WebSockets alone).

`attach` connects to the container's output as it is written from now on (the file `pods/log` reads;
stdout and stderr arrive merged there, as on stdout). netsim starts containers with stdin from
/dev/null, so what an attached client sends on stdin is read and dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from netsim.apiserver import errors, execws, portforward, spdy

SPDY_UPGRADE = "SPDY/3.1"
REMOTECOMMAND_SPDY = ("v4.channel.k8s.io", "v5.channel.k8s.io")
STREAM_WAIT = 30.0  # the kubelet's streamCreationTimeout


class Upgraded:
    """The connection after the 101: reads go through the request's buffered reader first (bytes the
    client sent right after its request are already there), writes to the socket."""

    def __init__(self, sock: Any, rfile: Any):
        self.sock, self.rfile = sock, rfile

    def recv(self, n: int) -> bytes:
        return self.rfile.read1(n)  # type: ignore[no-any-return]

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def settimeout(self, t: float | None) -> None:
        self.sock.settimeout(t)


def offered(headers: Any, name: str) -> list[str]:
    values = headers.get_all(name) if hasattr(headers, "get_all") else [headers.get(name)]
    return [p.strip() for v in values or [] if v for p in v.split(",") if p.strip()]


def is_websocket(headers: Any) -> bool:
    return (headers.get("Upgrade") or "").lower() == "websocket" and bool(headers.get("Sec-WebSocket-Key"))


def is_spdy(headers: Any) -> bool:
    return (headers.get("Upgrade") or "").lower() == SPDY_UPGRADE.lower()


def negotiate(client: list[str], server: Sequence[str], kind: str) -> str:
    """The server's first protocol the client offers (httpstream.negotiateProtocol), or 403."""
    for p in server:
        if p in client:
            return p
    raise errors.ApiError(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                                            f"{client}, server accepts {list(server)} for {kind}")


def ws_headers(headers: Any, protocol: str) -> dict[str, str]:
    return {"Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Accept": execws.accept_key(headers["Sec-WebSocket-Key"]),
            "Sec-WebSocket-Protocol": protocol}


def spdy_headers(protocol: str) -> dict[str, str]:
    return {"Connection": "Upgrade", "Upgrade": SPDY_UPGRADE, "X-Stream-Protocol-Version": protocol}


def upgrade_required(what: str) -> errors.ApiError:
    return errors.bad_request(f"Upgrade request required: {what} is served over WebSocket or SPDY/3.1")


# -- remotecommand over SPDY --------------------------------------------------------------------------
def _wanted(query: Mapping[str, str], name: str) -> bool:
    return query.get(name) in ("true", "1")


def spdy_session(conn: Upgraded, query: Mapping[str, str]) -> tuple[spdy.Session, dict[str, spdy.Stream]] | None:
    """Start the session and wait for the streams the request announced (error, plus stdin/stdout/stderr
    as asked, resize with a tty); None when they do not all come (the kubelet gives up after 30 s)."""
    session = spdy.Session(spdy.SocketTransport(conn))
    streams: dict[str, spdy.Stream] = {}
    cond = threading.Condition()

    def on_stream(st: spdy.Stream) -> None:
        with cond:
            streams[st.headers.get("streamtype", "")] = st
            cond.notify_all()
    threading.Thread(target=session.run, args=(on_stream,), daemon=True, name="netsim-spdy").start()
    wanted = {"error"} | {s for s in ("stdin", "stdout", "stderr") if _wanted(query, s)}
    if _wanted(query, "tty"):
        wanted.add("resize")
    if not spdy.wait_streams(streams, wanted - {"resize"}, cond, STREAM_WAIT):
        session.goaway()
        return None
    return session, streams


def _finish(session: spdy.Session, streams: dict[str, spdy.Stream], status: dict[str, Any]) -> None:
    for name in ("stdout", "stderr"):
        if name in streams:
            streams[name].close()
    streams["error"].write(json.dumps(status).encode())
    streams["error"].close()
    session.closed.wait(5)  # the client ends the connection once it has read the status


def exec_spdy(conn: Upgraded, ns: str, argv: list[str], query: Mapping[str, str]) -> None:
    got = spdy_session(conn, query)
    if got is None:
        return
    session, streams = got
    try:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv],
                                stdin=subprocess.PIPE if "stdin" in streams else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        _finish(session, streams, {"metadata": {}, "status": "Failure", "message": str(e), "reason": "InternalError"})
        return

    def pump(src: Any, name: str) -> None:
        for chunk in iter(lambda: src.read1(32768), b""):
            if name in streams:
                with contextlib.suppress(OSError):
                    streams[name].write(chunk)

    def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            while chunk := streams["stdin"].read():
                proc.stdin.write(chunk)
                proc.stdin.flush()
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()

    def client_gone() -> None:  # the kubelet ends an exec whose client left (its stream context ends)
        session.closed.wait()
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
    threading.Thread(target=client_gone, daemon=True).start()
    pumps = [threading.Thread(target=pump, args=(proc.stdout, "stdout"), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, "stderr"), daemon=True)]
    if "stdin" in streams:
        pumps.append(threading.Thread(target=feed, daemon=True))
    for p in pumps:
        p.start()
    code = proc.wait()
    for p in pumps[:2]:
        p.join(timeout=5)
    _finish(session, streams, execws.exit_status(code, argv))


# -- attach -------------------------------------------------------------------------------------------
def attach_output(path: str, write: Callable[[bytes], None], alive: Callable[[], bool],
                  gone: Callable[[], bool]) -> None:
    """What the container writes from now on, until it is replaced (a restart), the pod goes away or
    the client leaves (`gone`)."""
    from netsim.apiserver.logs import follow
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        size = 0
    first = b""
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        f.seek(size)
        first = f.read()
    for chunk in follow(path, first, alive, gone):
        write(chunk)


def attach_spdy(conn: Upgraded, path: str, query: Mapping[str, str], alive: Callable[[], bool],
                stopping: Callable[[], bool]) -> None:
    got = spdy_session(conn, query)
    if got is None:
        return
    session, streams = got
    if "stdin" in streams:  # nothing to deliver it to: read and drop
        threading.Thread(target=lambda: [None for _ in iter(streams["stdin"].read, b"")], daemon=True).start()
    out = streams.get("stdout") or streams.get("stderr")
    with contextlib.suppress(OSError):
        attach_output(path, out.write if out else (lambda b: None), alive,
                      lambda: stopping() or session.closed.is_set())
    if not session.closed.is_set():
        _finish(session, streams, {"metadata": {}, "status": "Success"})


def attach_ws(conn: Upgraded, path: str, query: Mapping[str, str], alive: Callable[[], bool],
              stopping: Callable[[], bool]) -> None:
    lock = threading.Lock()
    left = threading.Event()
    channel = execws.STDOUT if _wanted(query, "stdout") else execws.STDERR

    def send(raw: bytes) -> None:
        with lock:
            conn.sendall(raw)

    def client() -> None:
        for _ in execws.data_frames(conn, lock):
            pass  # attach without stdin: the client's data is dropped, its pings answered
        left.set()
    threading.Thread(target=client, daemon=True).start()
    with contextlib.suppress(OSError):
        attach_output(path, lambda b: send(execws.frame(bytes([channel]) + b)), alive,
                      lambda: stopping() or left.is_set())
        send(execws.frame(bytes([execws.ERROR]) + json.dumps({"metadata": {}, "status": "Success"}).encode()))
        send(execws.frame(b"\x03\xe8", execws.OP_CLOSE))


# -- port-forward -------------------------------------------------------------------------------------
def pod_connector(kernel: Any, netns: str) -> portforward.Connect:
    """Connect to localhost:PORT inside the pod's network namespace (the socket is created there by the
    kernel's namespace thread, then connected from ours: it stays in the pod's namespace)."""
    from netsim.kernel.api import KernelError
    from netsim.netns_sockets import open_in_netns

    def connect(port: int) -> socket.socket:
        if kernel is None:
            raise OSError("the API server has no handle on the cluster's namespaces")
        try:
            s = open_in_netns(kernel, netns, socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC,
                              what=f"open a socket to port {port}")
        except KernelError as e:
            raise OSError(str(e)) from None
        s.setblocking(True)
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            raise
        s.settimeout(None)
        return s
    return connect


def portforward_spdy(conn: Upgraded, connect: portforward.Connect, pod: str, netns: str) -> None:
    portforward.serve_spdy(spdy.SocketTransport(conn), connect, pod, netns)
