"""`pods/portforward`: connections to a pod's ports, made from inside the pod's network namespace.

Three ways in, all served here (as kube-apiserver proxies them to the kubelet's streaming server):

- SPDY/3.1 after `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`
  (kubelet pkg/kubelet/cri/streaming/portforward/httpstream.go): per forwarded connection the client
  opens an `error` and a `data` stream carrying the same `requestid` and the `port`; bytes on the data
  stream go to the pod's port and back; a failure is written on the error stream; both are closed when
  the forwarding ends.
- the same SPDY inside WebSocket binary messages, subprotocol `SPDY/3.1+portforward.k8s.io` (KEP-4006:
  kubectl >= 1.30 tries it first; k8s.io/apiserver pkg/util/proxy/streamtunnel.go on the server side).
- WebSocket `v4.channel.k8s.io` with `?ports=P1,P2` (portforward/websocket.go, what the Python client
  speaks): two channels per port (2i data, 2i+1 error), each opened by a message holding the port
  (uint16, little-endian); one connection per port for the life of the WebSocket.

The connection into the pod is made as containerd's CRI PortForward makes it
(internal/cri/server/sandbox_portforward_linux.go): to localhost:PORT inside the sandbox's network
namespace, so nothing is opened in the host's. When one direction ends, the other gets one second to
finish, then both are closed (containerd's grace, after socat). The pod side is also told when the
client will send no more (shutdown for writing), so request/response clients that half-close work.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from netsim.apiserver import errors, execws, spdy

log = logging.getLogger("netsim.apiserver.portforward")

SPDY_PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
WS_PROTOCOLS = ("v4.channel.k8s.io", "v5.channel.k8s.io", "channel.k8s.io")
GRACE = 1.0  # seconds the other direction gets once one has ended (containerd's portForward)
STREAM_PAIR_TIMEOUT = 30.0  # kubelet's streamCreationTimeout for the second stream of a pair

Connect = Callable[[int], socket.socket]


def ports_of(query: Sequence[tuple[str, str]]) -> list[int]:
    """The `ports` query parameter(s) of a WebSocket port-forward, as the kubelet parses them
    (portforward/websocket.go parsePortForwardRequest): comma-separated, repeated, each 1..65535."""
    raw = [p.strip() for k, v in query if k == "ports" for p in v.split(",") if p.strip()]
    if not raw:
        raise errors.bad_request('query parameter "port" is required')
    out = []
    for p in raw:
        if not p.isdigit() or int(p) > 65535:
            raise errors.bad_request(f'unable to parse "{p}" as a port')
        if int(p) == 0:
            raise errors.bad_request(f'port "{p}" must be > 0')
        out.append(int(p))
    return out


def connect_failed(port: int, pod: str, ns: str, err: Exception) -> str:
    """The kubelet's message (streaming/portforward httpstream.go) around containerd's."""
    return (f"error forwarding port {port} to pod {pod}, uid : failed to connect to localhost:{port} "
            f"inside namespace \"{ns}\", IPv4: {err} IPv6 <nil>: ")


def _pump_pair(sock: socket.socket, read_client: Callable[[], bytes], write_client: Callable[[bytes], None],
               end_client: Callable[[], None]) -> None:
    """Copy both ways between the pod's socket and the client until one way ends, then give the other
    GRACE seconds, then stop."""
    done = threading.Event()
    to_pod_done = threading.Event()

    def pod_to_client() -> None:
        try:
            while chunk := sock.recv(65536):
                write_client(chunk)
        except OSError:
            pass
        finally:
            end_client()
            done.set()

    def client_to_pod() -> None:
        try:
            while chunk := read_client():
                sock.sendall(chunk)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            to_pod_done.set()
            done.set()

    a = threading.Thread(target=pod_to_client, daemon=True, name="netsim-pf-out")
    b = threading.Thread(target=client_to_pod, daemon=True, name="netsim-pf-in")
    a.start()
    b.start()
    done.wait()
    a.join(GRACE)
    if a.is_alive():
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        a.join(GRACE)
    sock.close()


# -- SPDY (plain or tunnelled in a WebSocket) ---------------------------------------------------------
def serve_spdy(transport: spdy.Transport, connect: Connect, pod: str, netns: str) -> None:
    """Run one port-forward session: every (error, data) stream pair becomes one connection to the pod."""
    session = spdy.Session(transport)
    pairs: dict[str, dict[str, spdy.Stream]] = {}
    lock = threading.Lock()

    def forward(pair: dict[str, spdy.Stream]) -> None:
        err, data = pair["error"], pair["data"]
        port_h = data.headers.get("port", "")
        try:
            if not port_h.isdigit() or not 0 < int(port_h) <= 65535:
                err.write(f'invalid port header "{port_h}"'.encode())
                return
            port = int(port_h)
            try:
                sock = connect(port)
            except OSError as e:
                err.write(connect_failed(port, pod, netns, e).encode())
                return
            _pump_pair(sock, data.read, data.write, data.close)
        finally:
            data.close()
            err.close()

    def on_stream(st: spdy.Stream) -> None:
        kind = st.headers.get("streamtype", "")
        rid = st.headers.get("requestid") or str(st.id)
        if kind not in ("error", "data"):
            st.reset()
            return
        with lock:
            pair = pairs.setdefault(rid, {})
            pair[kind] = st
            complete = len(pair) == 2
            if complete:
                del pairs[rid]
        if complete:
            threading.Thread(target=forward, args=(pair,), daemon=True, name="netsim-pf").start()

    session.run(on_stream)


class WebSocketTransport:
    """The SPDY byte stream carried in WebSocket binary messages (client-go tunneling_connection.go)."""

    def __init__(self, conn: Any):
        self.conn = conn
        self._lock = threading.Lock()
        self._frames = execws.data_frames(conn, self._lock)

    def recv(self) -> bytes:
        return next(self._frames, b"")

    def _send(self, raw: bytes) -> None:
        with self._lock:
            self.conn.sendall(raw)

    def send(self, data: bytes) -> None:
        self._send(execws.frame(data))


def serve_tunnel(conn: Any, connect: Connect, pod: str, netns: str) -> None:
    transport = WebSocketTransport(conn)
    serve_spdy(transport, connect, pod, netns)
    with contextlib.suppress(OSError):
        transport._send(execws.frame(b"\x03\xe8", execws.OP_CLOSE))


# -- WebSocket channels (v4.channel.k8s.io) -----------------------------------------------------------
def serve_channels(conn: Any, connect: Connect, ports: list[int], pod: str, netns: str) -> None:
    """Data channel 2i and error channel 2i+1 for ports[i]; the WebSocket closes when every port's
    connection has ended (or the client closes it)."""
    lock = threading.Lock()

    def send(channel: int, data: bytes) -> None:
        with lock, contextlib.suppress(OSError):
            conn.sendall(execws.frame(bytes([channel]) + data))

    socks: dict[int, socket.socket | None] = {}
    for i, port in enumerate(ports):
        send(2 * i, port.to_bytes(2, "little"))
        send(2 * i + 1, port.to_bytes(2, "little"))
    for i, port in enumerate(ports):
        try:
            socks[i] = connect(port)
        except OSError as e:
            socks[i] = None
            send(2 * i + 1, connect_failed(port, pod, netns, e).encode())
    open_ports = threading.Semaphore(0)
    live = [i for i, s in socks.items() if s is not None]

    def pod_to_client(i: int, sock: socket.socket) -> None:
        try:
            while chunk := sock.recv(65536):
                send(2 * i, chunk)
        except OSError:
            pass
        open_ports.release()

    for i in live:
        threading.Thread(target=pod_to_client, args=(i, socks[i]), daemon=True, name="netsim-pf-ws").start()

    def client() -> None:
        try:
            for data in execws.data_frames(conn, lock, (execws.OP_BIN, execws.OP_CONT)):
                channel, payload = data[0], data[1:]
                sock = socks.get(channel // 2) if channel % 2 == 0 else None
                if sock is not None and payload:
                    sock.sendall(payload)
        except (EOFError, OSError):
            pass
        for _ in live:
            open_ports.release()  # the client left: stop waiting for the pods' side

    threading.Thread(target=client, daemon=True, name="netsim-pf-ws-in").start()
    for _ in live:
        open_ports.acquire()
    time.sleep(0.05)
    for s in socks.values():
        if s is not None:
            s.close()
    with lock, contextlib.suppress(OSError):
        conn.sendall(execws.frame(b"\x03\xe8", execws.OP_CLOSE))
