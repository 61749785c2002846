"""The cluster DNS responder: one thread, one selector, UDP and TCP port 53 in any number of namespaces.

Like CoreDNS pods behind the kube-dns Service VIP: `serve(netns)` opens a UDP and a TCP socket on port 53
inside a DNS pod's network namespace (through `Kernel.call_in`; a socket stays in the namespace it was
created in), and one loop answers them all. Answers come from `records.ClusterDNS` over the snapshot that
`snapshot_fn()` returns at the time of the query; the index is rebuilt only when that returns a different
object, so the daemon swaps in a new Snapshot on every store change and pays nothing per query.

Wire behaviour follows CoreDNS: AA set, RA clear (the kubernetes plugin never claims recursion), the
question echoed with the client's case, an EDNS0 OPT (advertising 1232 bytes) when the client sent one,
UDP answers that do not fit the client's EDNS0 buffer (512 bytes without EDNS0) truncated with TC set so the client
retries over TCP, FORMERR for malformed queries, NOTIMP for opcodes other than QUERY. TCP connections may
carry several length-prefixed queries and are closed after `tcp_idle` seconds of silence.

Malformed input never costs more than its own answer: what miekg/dns (CoreDNS's server) rejects from the
header alone (server.go serveDNS with acceptfunc.go defaultMsgAcceptFunc: responses ignored; not exactly
one question, more than one answer or authority record, or more than two additional records) gets FORMERR
before any parsing; a body that does not parse, or a name longer than 255 bytes on the wire (dns.ErrLongDomain),
gets FORMERR; fewer than 12 bytes (no header to echo) and anything with QR set get silence; a failure while
answering costs one SERVFAIL. TCP connections are capped (`max_tcp`) and one whose client does not read
its replies is closed once `MAX_TCP_PENDING` bytes wait for it.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dnslib import (
    AAAA,
    CNAME,
    EDNS0,
    NS,
    PTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    TXT,
    A,
    DNSHeader,
    DNSRecord,
)

from netsim.dns.records import DEFAULT_DOMAIN, DEFAULT_TTL, Answer, ClusterDNS, Record, Snapshot
from netsim.kernel.api import Kernel
from netsim.netns_sockets import Conn, NetnsServer

log = logging.getLogger(__name__)

DNS_PORT = 53
UDP_DEFAULT_SIZE = 512
EDNS_SIZE = 1232  # what CoreDNS advertises (the DNS flag day 2020 value)
MAX_UDP = 65535
TCP_BACKLOG = 1024
MAX_BATCH = 256
MAX_NAME_WIRE = 255  # RFC 1035 3.1: a name is at most 255 octets on the wire
MAX_TCP = 1024  # open client connections over all namespaces; more are closed at once
MAX_TCP_PENDING = 1 << 20  # reply bytes waiting for a client that does not read
_HEADER = struct.Struct("!HHHHHH")


@dataclass(eq=False)
class _Tcp(Conn):
    """A client's TCP connection: the bytes of queries not yet complete, replies not yet sent."""

    netns: str = ""
    buf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)


@dataclass
class _Listener:
    sock: socket.socket
    netns: str
    kind: str  # "udp" | "tcp"


class SnapshotHolder:
    """A thread-safe current-snapshot cell the daemon can `set()` and hand to DnsServer as snapshot_fn."""

    def __init__(self, snapshot: Snapshot | None = None):
        self._snap = snapshot or Snapshot()

    def set(self, snapshot: Snapshot) -> None:
        self._snap = snapshot  # one reference store: atomic under the GIL

    def __call__(self) -> Snapshot:
        return self._snap


def _rr(rec: Record) -> RR:
    t = rec.type
    d = rec.data
    if t == "A":
        rdata: Any = A(d)
    elif t == "AAAA":
        rdata = AAAA(d)
    elif t == "CNAME":
        rdata = CNAME(d)
    elif t == "PTR":
        rdata = PTR(d)
    elif t == "NS":
        rdata = NS(d)
    elif t == "TXT":
        rdata = TXT(d)
    elif t == "SRV":
        rdata = SRV(priority=d.priority, weight=d.weight, port=d.port, target=d.target)
    elif t == "SOA":
        rdata = SOA(d.mname, d.rname, (d.serial, d.refresh, d.retry, d.expire, d.minimum))
    else:
        raise ValueError(f"cannot encode record type {t}")
    return RR(rec.name, getattr(QTYPE, t), ttl=rec.ttl, rdata=rdata)


def encode(request: DNSRecord, answer: Answer, *, max_size: int | None = None) -> bytes:
    """The reply to `request` carrying `answer`, truncated (TC) to `max_size` bytes when given (UDP)."""
    h = request.header
    reply = DNSRecord(DNSHeader(id=h.id, qr=1, opcode=h.opcode, aa=int(answer.authoritative), rd=h.rd, ra=0,
                                rcode=getattr(RCODE, answer.rcode)), q=request.q)
    for rec in answer.answers:
        reply.add_answer(_rr(rec))
    for rec in answer.authority:
        reply.add_auth(_rr(rec))
    for rec in answer.additional:
        reply.add_ar(_rr(rec))
    opt = next((r for r in request.ar if r.rtype == QTYPE.OPT), None)
    if opt is not None:
        reply.add_ar(EDNS0(udp_len=EDNS_SIZE))
    data = reply.pack()
    if max_size is None or len(data) <= max_size:
        return data
    # Too big for the client's buffer: drop the additional records, then answers from the end (CoreDNS
    # Scrub keeps what fits), and set TC so a resolver retries over TCP.
    reply.header.tc = 1
    reply.ar = [r for r in reply.ar if r.rtype == QTYPE.OPT]
    reply.auth = []
    records = reply.rr
    lo, hi = 0, len(records)  # the most answers that fit, by bisection (packing is the costly part)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        reply.rr = records[:mid]
        if len(reply.pack()) <= max_size:
            lo = mid
        else:
            hi = mid - 1
    reply.rr = records[:lo]
    return reply.pack()


def _error_reply(data: bytes, rcode: int) -> bytes | None:
    """A header-only reply for a query we cannot parse or do not implement; None if even the id is lost
    or the message is itself a response (never answer those: reflection loops)."""
    if len(data) < _HEADER.size:
        return None
    ident, flags = struct.unpack("!HH", data[:4])
    if flags & 0x8000:
        return None
    opcode = (flags >> 11) & 0xF
    rd = (flags >> 8) & 1
    header = DNSHeader(id=ident, qr=1, opcode=opcode, rd=rd, ra=0, rcode=rcode)
    return DNSRecord(header).pack()


def _header_verdict(data: bytes) -> int | None:
    """What the header alone decides, as miekg/dns defaultMsgAcceptFunc (acceptfunc.go): -1 drop it,
    an rcode to answer with, None to go on parsing."""
    if len(data) < _HEADER.size:
        return -1
    _id, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if flags & 0x8000:
        return -1
    if (flags >> 11) & 0xF != 0:
        return RCODE.NOTIMP
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        return RCODE.FORMERR
    return None


def _wire_length(labels: tuple[bytes, ...]) -> int:
    return sum(len(label) + 1 for label in labels) + 1


class DnsServer(NetnsServer):
    """Cluster DNS for netsim. `serve`/`unserve` may be called from any thread, before or after `start`.

    The thread, selector, wake pipe, start/stop and connection bookkeeping come from `NetnsServer`."""

    thread_name = "netsim-dns"
    stopped_message = "DnsServer was stopped; make a new one"

    def __init__(self, kernel: Kernel, snapshot_fn: Callable[[], Snapshot], domain: str = DEFAULT_DOMAIN, *,
                 port: int = DNS_PORT, ttl: int = DEFAULT_TTL, pods: str = "insecure",
                 dns_service: tuple[str, str] = ("kube-system", "kube-dns"), tcp_idle: float = 10.0,
                 max_tcp: int = MAX_TCP):
        super().__init__(kernel)
        self._snapshot_fn = snapshot_fn
        self.domain = domain
        self.port = port
        self._dns_kw = {"ttl": ttl, "pods": pods, "dns_service": dns_service}
        ClusterDNS(Snapshot(), domain, **self._dns_kw)  # fail now on bad options, not on the first query
        self._tcp_idle = tcp_idle
        self._max_tcp = max_tcp
        self._listeners: dict[str, list[_Listener]] = {}
        self._resolver: ClusterDNS | None = None
        self._resolver_snap: Snapshot | None = None
        self.answered = {"udp": 0, "tcp": 0}

    # -- namespaces ---------------------------------------------------------------------------------
    def serve(self, netns: str, address: str = "0.0.0.0") -> None:
        """Answer DNS on `address`:port (UDP and TCP) inside `netns`. Serving a netns twice is a no-op.
        Raises OSError when the port cannot be bound (or the namespace is gone)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("DnsServer was stopped")
            if netns in self._listeners:
                return
        port = self.port

        def _open() -> tuple[socket.socket, socket.socket]:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                # SO_REUSEADDR on TCP only (TIME_WAIT after a restart); on UDP it would let a second
                # socket bind port 53 too and silently steal queries, so a clash must be EADDRINUSE.
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                for s in (udp, tcp):
                    s.bind((address, port))
                    s.setblocking(False)
                tcp.listen(TCP_BACKLOG)
            except OSError:
                udp.close()
                tcp.close()
                raise
            return udp, tcp
        # Not under our lock: the kernel thread may be busy with a caller that waits for a DNS answer.
        udp, tcp = self._kernel.call_in(netns, _open)
        with self._lock:
            if self._closed or netns in self._listeners:  # stopped, or served meanwhile by another thread
                udp.close()
                tcp.close()
                if self._closed:
                    raise RuntimeError("DnsServer was stopped")
                return
            lst = [_Listener(udp, netns, "udp"), _Listener(tcp, netns, "tcp")]
            for item in lst:
                self._sel.register(item.sock, selectors.EVENT_READ, item)
            self._listeners[netns] = lst
        self._wake()

    def unserve(self, netns: str) -> bool:
        """Close the sockets (and open TCP connections) in `netns`; False when it was not served."""
        with self._lock:
            return self._unserve_locked(netns)

    def serving(self) -> list[str]:
        with self._lock:
            return sorted(self._listeners)

    def _unserve_all_locked(self) -> None:
        for ns in list(self._listeners):
            self._unserve_locked(ns)

    def _unserve_locked(self, netns: str) -> bool:
        lst = self._listeners.pop(netns, None)
        if lst is None:
            return False
        for item in lst:
            self._sel.unregister(item.sock)
            item.sock.close()
        for conn in [c for c in self._conns.values() if isinstance(c, _Tcp) and c.netns == netns]:
            self._close_conn(conn)
        return True

    # -- answering ----------------------------------------------------------------------------------
    def resolver(self) -> ClusterDNS:
        """The ClusterDNS for the current snapshot (rebuilt when snapshot_fn returns a new object)."""
        snap = self._snapshot_fn()
        with self._lock:
            if self._resolver is None or snap is not self._resolver_snap:
                self._resolver = ClusterDNS(snap, self.domain, **self._dns_kw)
                self._resolver_snap = snap
            return self._resolver

    def handle(self, data: bytes, *, udp: bool) -> bytes | None:
        """One query in, the reply bytes out (None: drop it). Over UDP the reply is cut to the client's
        EDNS0 buffer size (512 without EDNS0); TCP replies are whole. Never raises: whatever goes wrong
        with one message costs that message's answer (FORMERR, SERVFAIL or silence), not the server."""
        try:
            return self._handle(data, udp=udp)
        except Exception:  # a bug must cost one SERVFAIL, not the DNS thread
            log.exception("dns: answering a %d-byte query", len(data))
            return _error_reply(data, RCODE.SERVFAIL)

    def _handle(self, data: bytes, *, udp: bool) -> bytes | None:
        verdict = _header_verdict(data)
        if verdict is not None:
            return None if verdict < 0 else _error_reply(data, verdict)
        try:
            request = DNSRecord.parse(data)
        except Exception:  # dnslib raises DNSError, DNSLabelError, BufferError, ValueError, IndexError, ...
            return _error_reply(data, RCODE.FORMERR)
        if len(request.questions) != 1:
            return _error_reply(data, RCODE.FORMERR)
        q = request.questions[0]
        if _wire_length(q.qname.label) > MAX_NAME_WIRE:  # miekg/dns: ErrLongDomain while unpacking
            return _error_reply(data, RCODE.FORMERR)
        try:
            answer = self.resolver().answer(str(q.qname), QTYPE.get(q.qtype, f"TYPE{q.qtype}"))
        except Exception:  # a bug must cost one SERVFAIL, not the DNS thread
            log.exception("dns: answering %s %s", q.qname, q.qtype)
            answer = Answer("SERVFAIL", authoritative=False)
        max_size = None
        if udp:
            opt = next((r for r in request.ar if r.rtype == QTYPE.OPT), None)
            max_size = max(UDP_DEFAULT_SIZE, opt.rclass) if opt is not None else UDP_DEFAULT_SIZE
        return encode(request, answer, max_size=max_size)

    # -- the loop (NetnsServer calls _on_ready) ------------------------------------------------------
    def _on_ready(self, data: object, mask: int) -> None:
        if isinstance(data, _Listener):
            if data.kind == "udp":
                self._on_udp(data)
            else:
                self._on_accept(data)
        elif isinstance(data, _Tcp) and not data.closed:
            self._on_tcp(data, mask)

    def _on_udp(self, lst: _Listener) -> None:
        for _ in range(MAX_BATCH):
            try:
                data, peer = lst.sock.recvfrom(MAX_UDP)
            except (BlockingIOError, InterruptedError):
                return
            reply = self.handle(data, udp=True)
            if reply is not None:
                try:
                    lst.sock.sendto(reply, peer)
                    self.answered["udp"] += 1
                except OSError as exc:
                    log.debug("dns: reply to %s in %s: %s", peer, lst.netns, exc)

    def _on_accept(self, lst: _Listener) -> None:
        for _ in range(MAX_BATCH):
            try:
                sock, _peer = lst.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ECONNABORTED: that one is gone; out of descriptors: try again later
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("dns: cannot accept in %s: %s", lst.netns, exc)
                    return
                continue
            if len(self._conns) >= self._max_tcp:
                sock.close()
                continue
            sock.setblocking(False)
            self._add_conn(_Tcp(sock, time.monotonic() + self._tcp_idle, netns=lst.netns))

    def _on_tcp(self, conn: _Tcp, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            data = conn.sock.recv(65536)
            if not data:
                self._close_conn(conn)
                return
            conn.buf += data
            conn.deadline = time.monotonic() + self._tcp_idle
            while len(conn.buf) >= 2:
                size = struct.unpack("!H", conn.buf[:2])[0]
                if len(conn.buf) < 2 + size:
                    break
                msg = bytes(conn.buf[2:2 + size])
                del conn.buf[:2 + size]
                reply = self.handle(msg, udp=False)
                if reply is not None:
                    conn.out += struct.pack("!H", len(reply)) + reply
                    self.answered["tcp"] += 1
            if len(conn.out) > MAX_TCP_PENDING:  # the client sends but does not read
                self._close_conn(conn)
                return
        if conn.out:
            try:
                sent = conn.sock.send(conn.out)
                del conn.out[:sent]
            except (BlockingIOError, InterruptedError):
                pass
        if not conn.closed:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
            self._sel.modify(conn.sock, events, conn)
