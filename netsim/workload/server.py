"""One server thread for every pod's declared ports, across network namespaces.

A socket stays in the namespace it was created in, whichever thread later uses it, so the sockets are
opened inside each pod's netns (through `Kernel.call_in`) and then all driven by one epoll loop on one
thread: no process or thread per pod or per connection.

- TCP: a listening socket per (netns, port); each accepted connection's first bytes are sniffed
  (netsim.workload.http): an HTTP/1.x request is answered as HTTP (200, keep-alive honoured), the HTTP/2
  preface as h2c (gRPC health); anything else, or silence for SNIFF_WINDOW (a client half-closing its
  side at once, as the probe engine does, is answered at once), gets the JSON identity line and a FIN,
  and is closed when the client closes (or after `linger` seconds), so a client that sent something
  first still reads the answer instead of a reset.
- UDP: a bound socket per (netns, port); every datagram is answered with the identity, sent from the
  address it was sent to (IP_PKTINFO), which matters in a node netns with several addresses.
- SCTP: the kernel has no SCTP stack, so one raw IPPROTO_SCTP socket per netns answers INIT with an
  INIT-ACK whose State Cookie carries the identity, and INIT to a port nobody serves with ABORT, as
  a real stack would (RFC 9260 8.4). Nothing else is answered: the prober only needs the first exchange.

Several pods may share a netns (hostNetwork pods on one node); a port taken twice fails for the second
pod, which is then not ready. Readiness is what actually listens: `listening(pod_key)`.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import resource
import secrets
import selectors
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from netsim.kernel.api import Kernel, KernelError
from netsim.kernel.netns import netns_path
from netsim.netns_sockets import Conn, NetnsServer
from netsim.workload import h2, http, identity, sctp

log = logging.getLogger(__name__)

SOL_IP = 0
IP_PKTINFO = 8  # linux/in.h; not exported by Python's socket module
_PKTINFO = struct.Struct("=I4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
LISTEN_BACKLOG = 4096
# The share of RLIMIT_NOFILE a pod's listener may never take: the rest of the process (kube-proxy's
# iptables-restore pipes, the store, probes, the kernel layer's cached netlink sockets: up to a twentieth of
# the limit, plus 256 pyroute2 sockets of ~3 descriptors) keeps working when pods alone would exhaust it.
# Past it a pod's port moves to a workload shard (netsim.workload.shards), or fails on that pod alone; before,
# EMFILE failed every node's kube-proxy sync. A fixed 1,024 was too few: at 17,500 pods under a limit of
# 20,000 the caches took the daemon to 19,877 descriptors.
FD_RESERVE_SHARE = 4  # a quarter
MAX_BATCH = 256  # accepts or datagrams handled per readiness event, so one busy port cannot starve the rest

PortKey = tuple[int, str]  # (port, protocol)


def _normalise_ports(ports: Iterable[tuple[int, str]]) -> list[PortKey]:
    out: list[PortKey] = []
    for port, proto in ports:
        p = (proto or "TCP").upper()
        if p not in identity.PROTOCOLS:
            raise ValueError(f"unsupported protocol {proto!r}")
        if not 0 < int(port) < 65536:
            raise ValueError(f"port {port} out of range")
        if (int(port), p) not in out:
            out.append((int(port), p))
    return out


@dataclass
class _Listener:
    """A TCP listening or UDP bound socket of one pod port."""

    sock: socket.socket
    pod: str
    node: str
    port: int
    protocol: str
    closed: bool = False


SNIFF, HTTP1, H2, LINGER = "sniff", "http", "h2", "linger"
SNIFF_WINDOW = 0.1  # seconds a silent TCP client is given to start an HTTP request before it gets the identity


@dataclass(eq=False)
class _Stream(Conn):
    """An accepted TCP connection: sniffing its first bytes, speaking HTTP/1.x or h2c, or lingering (answered,
    draining until the client closes)."""

    answer: bytes = b""  # the identity line
    hostname: str = ""
    pod: str = ""  # ns/name, whose request count each answer raises
    sniff_until: float = 0.0
    mode: str = SNIFF
    buf: bytes = b""
    h2: object = None  # the h2c connection state, when the client speaks HTTP/2
    started: float = 0.0  # when the request being answered began (accept, or its first bytes), monotonic


@dataclass
class _SctpResponder:
    """The raw SCTP socket of one netns and the ports served there."""

    sock: socket.socket
    netns: str
    ports: dict[int, tuple[str, str]] = field(default_factory=dict)  # port -> (pod, node)
    closed: bool = False


@dataclass
class _Pod:
    node: str
    netns: str
    netns_id: tuple[int, int] | None  # the namespace's identity: a recreated sandbox has a new one
    listeners: dict[PortKey, _Listener] = field(default_factory=dict)
    sctp_ports: set[int] = field(default_factory=set)
    failed: dict[PortKey, str] = field(default_factory=dict)
    short: bool = False  # a port failed only because this process is out of descriptors (another may serve it)


class WorkloadServer(NetnsServer):
    """Serves pods' containerPorts; `serve`/`unserve` may be called from any thread, before or after start.

    In the per-cluster daemon: `server = WorkloadServer(kernel); server.start()` once; the kubelet calls
    `server.serve("ns/name", node, pod_netns, [(port, protocol), ...])` after CNI ADD (hostNetwork pods:
    the node's netns), reads `ready()`/`listening()` for readiness, and calls `unserve()` before the
    sandbox goes; `server.stop()` at shutdown. The thread, selector, wake pipe, start/stop and the
    bookkeeping of answered connections (`Conn`: waiting for the client's FIN) come from `NetnsServer`.
    """

    thread_name = "netsim-workload"
    stopped_message = "the workload server has been stopped"
    sweep_interval = 1.0  # lingering connections may be many: look for expired ones once a second

    def __init__(self, kernel: Kernel, *, linger: float = 5.0, max_lingering: int = 20000,
                 sniff_window: float = SNIFF_WINDOW, max_listeners: int | None = None):
        super().__init__(kernel)
        # A cap below the descriptor limit (tests: NETSIM_WORKLOAD_LISTENERS, netsim.workload.shards): a port
        # past it fails as one past the descriptor reserve does, so the pod moves to a shard process.
        self._max_listeners = max_listeners
        self._listeners = 0
        self._linger = linger
        self._max_lingering = max_lingering
        self._pods: dict[str, _Pod] = {}
        self._sctp: dict[str, _SctpResponder] = {}
        self.answered = {"TCP": 0, "UDP": 0, "SCTP": 0, "HTTP": 0, "GRPC": 0}
        # Requests answered per pod ("ns/name"), for the metrics sampler (requests per second, emulated CPU).
        self.requests: collections.Counter[str] = collections.Counter()
        # Seconds between a request's start and its answer, summed per pod: the request concurrency Knative's
        # autoscaler reads is this over an interval's length (a time-weighted average of in-flight requests).
        self.busy: collections.Counter[str] = collections.Counter()
        self._sniff_window = sniff_window
        self._sniffing: dict[int, _Stream] = {}

    # -- pods ---------------------------------------------------------------------------------------
    def serve(self, pod_key: str, node: str, netns: str, ports: Iterable[tuple[int, str]]) -> dict[PortKey, bool]:
        """Open `ports` [(port, "TCP"|"UDP"|"SCTP")] for `pod_key` inside `netns`.

        Called again for the same pod it converges to the new port list (a changed node or netns, also
        a sandbox recreated under the same name, means a fresh start). Returns {(port, protocol):
        listening}; the reasons for failures are kept for `failures()`. Call `unserve` BEFORE deleting
        the sandbox: open sockets keep a deleted namespace (and its veth) alive.
        """
        wanted = _normalise_ports(ports)
        netns_id = _netns_identity(netns)
        with self._lock:
            if self._closed:
                raise RuntimeError("the workload server has been stopped")
            old = self._pods.get(pod_key)
            if old is not None and (old.node, old.netns, old.netns_id) != (node, netns, netns_id):
                self._unserve_locked(pod_key)  # its sockets may live in a namespace that is gone
                old = None
            pod = old or _Pod(node, netns, netns_id)
            self._pods[pod_key] = pod
            for key in [k for k in pod.listeners if k not in wanted]:
                self._close_listener(pod.listeners.pop(key))
            for port in [p for p in pod.sctp_ports if (p, "SCTP") not in wanted]:
                self._sctp_release(netns, port)
                pod.sctp_ports.discard(port)
            pod.failed = {}
            todo = [k for k in wanted if k not in pod.listeners and not (k[1] == "SCTP" and k[0] in pod.sctp_ports)]
            todo_sockets = [k for k in todo if k[1] != "SCTP"]
            room = len(todo_sockets) if self._max_listeners is None else self._max_listeners - self._listeners
            opened: dict[PortKey, socket.socket | str] = {
                k: _ShortOfDescriptors(f"this process serves its cap of {self._max_listeners} listeners")
                for k in todo_sockets[max(0, room):]}
            opened.update(self._open_in(netns, todo_sockets[:max(0, room)]))
            for key, result in opened.items():
                if isinstance(result, socket.socket):
                    lst = _Listener(result, pod_key, node, key[0], key[1])
                    pod.listeners[key] = lst
                    self._listeners += 1
                    self._sel.register(result, selectors.EVENT_READ, lst)
                else:
                    pod.failed[key] = result
            for port in [k[0] for k in todo if k[1] == "SCTP"]:
                err = self._sctp_claim(netns, port, pod_key, node)
                if err is None:
                    pod.sctp_ports.add(port)
                else:
                    pod.failed[(port, "SCTP")] = err
            pod.short = any(isinstance(err, _ShortOfDescriptors) for err in pod.failed.values())
            for key, err in pod.failed.items():
                if not pod.short:  # a pod short of descriptors is moved to another process (workload/shards.py)
                    log.warning("%s: cannot serve %s/%s in %s: %s", pod_key, key[0], key[1], netns, err)
            return {k: k not in pod.failed for k in wanted}

    def short_of_descriptors(self, pod_key: str) -> bool:
        """The pod's last `serve` failed a port only because this process's listeners reached its descriptor
        reserve (FD_RESERVE_SHARE): the same ports would open in a process with descriptors to spare."""
        with self._lock:
            pod = self._pods.get(pod_key)
            return pod is not None and pod.short

    def request_counts(self) -> dict[str, int]:
        """Requests answered so far per pod (a copy; the server thread keeps counting). Taken under the
        server's lock, which its thread holds while it answers: an answer a client has read is counted."""
        with self._lock:
            return dict(self.requests)

    def request_stats(self) -> dict[str, tuple[float, float]]:
        """Per pod: (requests answered, request-seconds spent answering them), both cumulative."""
        with self._lock:
            busy = dict(self.busy)
            return {pod: (float(n), busy.get(pod, 0.0)) for pod, n in self.requests.items()}

    def unserve(self, pod_key: str) -> bool:
        """Close everything `pod_key` listens on; False when it was not served."""
        with self._lock:
            return self._unserve_locked(pod_key)

    def listening(self, pod_key: str) -> list[PortKey]:
        """The (port, protocol) pairs actually being served for the pod: its readiness."""
        with self._lock:
            pod = self._pods.get(pod_key)
            if pod is None:
                return []
            return sorted([*pod.listeners, *((p, "SCTP") for p in pod.sctp_ports)])

    def failures(self, pod_key: str) -> dict[PortKey, str]:
        with self._lock:
            pod = self._pods.get(pod_key)
            return dict(pod.failed) if pod else {}

    def ready(self, pod_key: str) -> bool:
        """Served, with every declared port listening."""
        with self._lock:
            pod = self._pods.get(pod_key)
            return pod is not None and not pod.failed

    def pods(self) -> list[str]:
        with self._lock:
            return sorted(self._pods)

    # -- socket setup (inside the pod netns) --------------------------------------------------------
    def _open_in(self, netns: str, keys: list[PortKey]) -> dict[PortKey, socket.socket | str]:
        if not keys:
            return {}

        def _open() -> dict[PortKey, socket.socket | str]:
            out: dict[PortKey, socket.socket | str] = {}
            for port, proto in keys:
                try:
                    out[(port, proto)] = _bind(port, proto)
                except DescriptorsReserved as exc:
                    out[(port, proto)] = _ShortOfDescriptors(exc.strerror)
                except OSError as exc:
                    out[(port, proto)] = exc.strerror or str(exc)
            return out
        try:
            return self._kernel.call_in(netns, _open)
        except (OSError, KernelError) as exc:  # the namespace is gone
            return {k: f"{netns}: {getattr(exc, 'strerror', None) or exc}" for k in keys}

    def _sctp_claim(self, netns: str, port: int, pod: str, node: str) -> str | None:
        resp = self._sctp.get(netns)
        if resp is None:
            try:
                sock = self._kernel.call_in(netns, _raw_sctp_socket)
            except (OSError, KernelError) as exc:
                return f"raw SCTP socket in {netns}: {getattr(exc, 'strerror', None) or exc}"
            resp = _SctpResponder(sock, netns)
            self._sctp[netns] = resp
            self._sel.register(sock, selectors.EVENT_READ, resp)
        owner = resp.ports.get(port)
        if owner is not None and owner[0] != pod:
            return f"{os.strerror(errno.EADDRINUSE)} (SCTP port {port} is served for {owner[0]})"
        resp.ports[port] = (pod, node)
        return None

    def _sctp_release(self, netns: str, port: int) -> None:
        resp = self._sctp.get(netns)
        if resp is None:
            return
        resp.ports.pop(port, None)
        if not resp.ports:
            del self._sctp[netns]
            resp.closed = True
            self._unregister_close(resp.sock)

    def _unserve_all_locked(self) -> None:
        for key in list(self._pods):
            self._unserve_locked(key)

    def _unserve_locked(self, pod_key: str) -> bool:
        pod = self._pods.pop(pod_key, None)
        if pod is None:
            return False
        for lst in pod.listeners.values():
            self._close_listener(lst)
        for port in pod.sctp_ports:
            self._sctp_release(pod.netns, port)
        return True

    def _close_listener(self, lst: _Listener) -> None:
        self._listeners -= 1
        lst.closed = True
        self._unregister_close(lst.sock)

    # -- the loop (NetnsServer calls _on_ready) ------------------------------------------------------
    def _on_ready(self, data: object, mask: int) -> None:
        if isinstance(data, _Listener):
            if data.closed:
                return
            if data.protocol == "TCP":
                self._on_tcp_listener(data)
            else:
                self._on_udp(data)
        elif isinstance(data, Conn):
            self._on_conn(data)
        elif isinstance(data, _SctpResponder) and not data.closed:
            self._on_sctp(data)

    def _on_tcp_listener(self, lst: _Listener) -> None:
        for _ in range(MAX_BATCH):
            try:
                conn, (cip, cport) = lst.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ECONNABORTED and friends: that connection is gone, others may wait
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("workload server cannot accept: %s", exc)
                    return
                continue
            conn.setblocking(False)
            answer = identity.encode(identity.identity(lst.pod, lst.node, cip, cport, lst.port, "TCP"))
            if len(self._conns) >= self._max_lingering:
                # No room to keep the connection: the identity at once, as to a client that says nothing.
                with contextlib.suppress(OSError):
                    conn.send(answer)
                    conn.shutdown(socket.SHUT_WR)
                self.answered["TCP"] += 1
                self.requests[lst.pod] += 1
                conn.close()
                continue
            now = time.monotonic()
            stream = _Stream(conn, now + self._linger, answer=answer, hostname=lst.pod.rpartition("/")[2],
                             sniff_until=now + self._sniff_window, pod=lst.pod, started=now)
            self._add_conn(stream)
            self._sniffing[id(stream)] = stream
            self._on_conn(stream)

    def _on_conn(self, conn: Conn) -> None:
        if conn.closed:
            return
        if isinstance(conn, _Stream) and conn.mode != LINGER:
            self._on_stream(conn)
            return
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_conn(conn)

    # -- TCP: sniffing, HTTP ---------------------------------------------------------------------------
    def _identity_answer(self, st: _Stream) -> None:
        """Today's TCP answer: the identity line and a FIN; what the client sent stays to be drained."""
        self._sniffing.pop(id(st), None)
        st.mode = LINGER
        try:
            st.sock.send(st.answer)
            st.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close_conn(st)
            return
        self.answered["TCP"] += 1
        self.requests[st.pod] += 1
        self.busy[st.pod] += time.monotonic() - st.started

    def _on_stream(self, st: _Stream) -> None:
        if st.mode == SNIFF:
            try:
                first = st.sock.recv(len(http.H2_PREFACE), socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close_conn(st)
                return
            kind = http.classify(first)
            if not first or kind == http.OTHER:
                self._identity_answer(st)  # a half-closed silent client, or not HTTP: the identity
                if not first and not st.closed:
                    self._close_conn(st)
                return
            if kind == http.UNDECIDED:
                return
            self._sniffing.pop(id(st), None)
            st.mode = HTTP1 if kind == http.HTTP1 else H2
        try:
            data = st.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_conn(st)
            return
        st.deadline = time.monotonic() + self._linger  # an idle keep-alive connection is closed after linger
        if not st.buf:
            st.started = time.monotonic()  # a new request begins
        st.buf += data
        if st.mode == HTTP1:
            self._serve_http1(st)
        else:
            self._serve_h2(st)

    def _serve_http1(self, st: _Stream) -> None:
        try:
            requests, st.buf = http.parse_requests(st.buf)
        except http.BadRequest as bad:
            self._send_and_close(st, http.response(bad.status, bad.reason, b"", "text/plain", close=True))
            return
        out = b""
        for req in requests:
            body, ctype = http.body_for(req, st.hostname, st.answer)
            close = not req.keep_alive
            out += http.response(200, "OK", body, ctype, close=close, head=req.method == "HEAD")
            self.answered["HTTP"] += 1
            self.requests[st.pod] += 1
            self.busy[st.pod] += time.monotonic() - st.started
            if close:
                self._send_and_close(st, out)
                return
        if out:
            self._send(st, out)

    def _serve_h2(self, st: _Stream) -> None:
        """h2c: every stream is answered as gRPC, the health check with SERVING (netsim.workload.h2)."""
        if st.h2 is None:
            st.h2 = h2.HealthServer()
        server = st.h2
        assert isinstance(server, h2.HealthServer)
        data, st.buf = st.buf, b""
        try:
            out = server.feed(data)
        except h2.H2Error:
            self._send_and_close(st, h2.frame(h2.GOAWAY, 0, 0, b"\0" * 4 + b"\0\0\0\x01"))  # PROTOCOL_ERROR
            return
        if out:
            self.answered["GRPC"] += out.count(b"grpc-status")
            self.requests[st.pod] += out.count(b"grpc-status")
            self._send(st, out)
        if server.closed:
            self._send_and_close(st, b"")

    def _send(self, st: _Stream, data: bytes) -> bool:
        try:
            st.sock.sendall(data)  # small answers into an empty send buffer: never blocks in practice
        except OSError:
            self._close_conn(st)
            return False
        return True

    def _send_and_close(self, st: _Stream, data: bytes) -> None:
        """Answer, then FIN; the connection lingers to drain what the client still sends (no reset)."""
        if self._send(st, data):
            st.mode = LINGER
            with contextlib.suppress(OSError):
                st.sock.shutdown(socket.SHUT_WR)

    def _next_timer(self) -> float:
        if not self._sniffing:
            return 1.0
        return min(st.sniff_until for st in self._sniffing.values()) - time.monotonic()

    def _on_timers(self, now: float) -> None:
        """A client that said nothing within the sniffing window is answered as before: the identity."""
        for st in [st for st in self._sniffing.values() if st.sniff_until <= now]:
            if not st.closed and st.mode == SNIFF:
                self._identity_answer(st)
            self._sniffing.pop(id(st), None)

    def _close_conn(self, conn: Conn) -> None:
        self._sniffing.pop(id(conn), None)
        super()._close_conn(conn)

    def _on_udp(self, lst: _Listener) -> None:
        for _ in range(MAX_BATCH):
            try:
                _data, anc, _flags, addr = lst.sock.recvmsg(65535, socket.CMSG_SPACE(_PKTINFO.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # a queued ICMP error; nothing to answer
            cmsgs = []
            for level, ctype, cdata in anc:
                if level == SOL_IP and ctype == IP_PKTINFO and len(cdata) >= _PKTINFO.size:
                    _ifindex, _spec, dst = _PKTINFO.unpack_from(cdata)
                    cmsgs = [(SOL_IP, IP_PKTINFO, _PKTINFO.pack(0, dst, b"\0\0\0\0"))]
            answer = identity.encode(identity.identity(lst.pod, lst.node, addr[0], addr[1], lst.port, "UDP"))
            try:
                lst.sock.sendmsg([answer], cmsgs, 0, addr)
                self.answered["UDP"] += 1
                self.requests[lst.pod] += 1
            except OSError as exc:
                log.debug("udp answer to %s failed: %s", addr, exc)

    def _on_sctp(self, resp: _SctpResponder) -> None:
        for _ in range(MAX_BATCH):
            try:
                data = resp.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            reply = self._sctp_reply(resp, data)
            if reply is None:
                continue
            packet, src_ip, dst_ip = reply
            try:
                resp.sock.sendmsg([packet], [(SOL_IP, IP_PKTINFO, _PKTINFO.pack(
                    0, socket.inet_aton(dst_ip), b"\0\0\0\0"))], 0, (src_ip, 0))
                self.answered["SCTP"] += 1
            except OSError as exc:
                log.debug("sctp answer to %s failed: %s", src_ip, exc)

    @staticmethod
    def _sctp_reply(resp: _SctpResponder, data: bytes) -> tuple[bytes, str, str] | None:
        """(packet, to, from) answering an INIT, or None for anything else."""
        try:
            ip = sctp.parse_ipv4(data)
            pkt = sctp.parse(ip.payload)
        except sctp.SctpParseError:
            return None
        if not pkt.checksum_ok or pkt.vtag != 0 or pkt.first_type != sctp.CHUNK_INIT or pkt.init is None:
            return None
        owner = resp.ports.get(pkt.dst_port)
        if owner is None:
            return sctp.build_abort(pkt), ip.src, ip.dst
        pod, node = owner
        cookie = identity.encode(identity.identity(pod, node, ip.src, pkt.src_port, pkt.dst_port, "SCTP"),
                                 newline=False)
        tag = secrets.randbits(32) or 1
        return sctp.build_init_ack(pkt, tag, secrets.randbits(32), cookie), ip.src, ip.dst


def _netns_identity(netns: str) -> tuple[int, int] | None:
    """(device, inode) of /run/netns/<name>, which changes when a sandbox is recreated under the same name."""
    try:
        st = os.stat(netns_path(netns))
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _bind(port: int, proto: str) -> socket.socket:
    """A non-blocking listening TCP or bound UDP socket on 0.0.0.0:port (in the calling thread's netns)."""
    kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        _check_reserve(sock.fileno())
        if proto == "TCP":  # not for UDP: there it would let two pods bind the same port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            sock.setsockopt(SOL_IP, IP_PKTINFO, 1)
        sock.bind(("0.0.0.0", port))
        if proto == "TCP":
            sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class DescriptorsReserved(OSError):
    """A listener would take one of the descriptors kept for the rest of the process (EMFILE)."""


class _ShortOfDescriptors(str):
    """The reason a port failed, when it failed for DescriptorsReserved (a str, as every other reason)."""


def _check_reserve(fd: int) -> None:
    """Refuse a listener whose descriptor reaches into the last quarter of the process's limit. The kernel
    hands out the lowest free number, so descriptor n means 0..n-1 are all taken: one comparison, no count."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    reserve = limit // FD_RESERVE_SHARE
    if limit != resource.RLIM_INFINITY and fd >= limit - reserve:
        raise DescriptorsReserved(errno.EMFILE, f"this process holds {fd + 1} of its {limit} file descriptors "
                                                f"(RLIMIT_NOFILE; the last {reserve} are kept for the rest of "
                                                "the process)")


def _raw_sctp_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                         sctp.IPPROTO_SCTP)
