"""Many probes at once from one thread: client sockets opened in each source netns, one selector loop.

A probe asks "from this namespace, does TARGET:PORT/PROTOCOL answer, and who?". Client sockets are
created inside the source netns through `Kernel.call_in` (one call per namespace per batch; a socket
stays in the namespace it was made in) and then driven, non-blocking, by one selector with a deadline
per attempt:

- TCP: connect; an accepted connection is "connected" and the workload server's JSON line says which
  pod served it and which client address it saw (after any SNAT). ECONNREFUSED (a RST, a REJECT rule,
  no listener) is "refused"; silence until the deadline (a DROP) is "timeout".
- UDP: a connected socket sends one datagram (again after a second if still unanswered); the JSON reply
  is "connected", an ICMP port unreachable arrives as ECONNREFUSED on the connected socket: "refused".
- SCTP: the kernel has no SCTP stack, so a raw IPPROTO_SCTP socket per source netns sends an INIT and
  reads the INIT-ACK whose verification tag is our initiate tag; its State Cookie carries the server's
  JSON. An ABORT is "refused", and so is an ICMP error read from the raw socket's error queue
  (IP_RECVERR), e.g. protocol unreachable from a netns nobody serves SCTP in.

Each attempt gets its own source port (for UDP and SCTP we choose distinct ones, TCP's connect() picks
distinct ports for concurrent connections to one destination), so `count` attempts spread over a
Service's endpoints the way separate clients would.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import secrets
import selectors
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim.kernel.api import Kernel
from netsim.workload import identity, sctp

OUTCOMES = ("connected", "refused", "timeout", "error")
SOL_IP = 0
IP_RECVERR = 11  # linux/in.h; not exported by Python's socket module
_SOCK_EXTENDED_ERR = struct.Struct("=IBBBBII")  # ee_errno, origin, type, code, pad, info, data
EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range
RETRANSMIT_AFTER = 1.0  # seconds before a UDP datagram or SCTP INIT is sent once more
UDP_PAYLOAD = b"netsim-probe\n"

# Errors that mean something answered "no": a RST, an ICMP unreachable/prohibited, a local firewall.
REFUSED_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENOPROTOOPT,
                  errno.EACCES, errno.EPERM}


@dataclass(frozen=True)
class Probe:
    """One question: from `netns` (labelled `source`, e.g. "x/a", "node/n1", "host/h") to target:port."""

    netns: str
    source: str
    target: str  # an IPv4 address (pod IP, service VIP, node IP)
    port: int
    protocol: str = "TCP"
    timeout: float = 2.0
    to: str | None = None  # what the target is called ("y/b", "svc/ns/name"); defaults to `target`

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", self.protocol.upper())
        if self.protocol not in identity.PROTOCOLS:
            raise ValueError(f"unsupported protocol {self.protocol!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} out of range")
        ipaddress.IPv4Address(self.target)  # ValueError for anything but an IPv4 address
        if self.timeout <= 0:
            raise ValueError("the timeout must be positive")


@dataclass
class ProbeResult:
    """What one attempt saw. `ms` runs from sending to the outcome (for TCP: until the identity line)."""

    probe: Probe
    outcome: str
    served_by: str | None = None
    client_ip: str | None = None
    ms: float = 0.0
    error: str | None = None
    attempt: int = 0
    source_port: int | None = None
    answer: dict[str, Any] | None = None  # the server's whole JSON identity

    @property
    def connected(self) -> bool:
        return self.outcome == "connected"

    def to_json(self) -> dict[str, Any]:
        """The docs/architecture.md probe result, plus the outcome and error text."""
        p = self.probe
        return {"from": p.source, "to": p.to or p.target, "target": p.target, "port": p.port,
                "protocol": p.protocol, "connected": self.connected, "servedBy": self.served_by,
                "clientIP": self.client_ip, "ms": round(self.ms, 3), "outcome": self.outcome,
                "error": self.error}


def spread(results: Iterable[ProbeResult]) -> dict[str, int]:
    """How many connected attempts each pod served, most first (load-balancing checks)."""
    counts = Counter(r.served_by or "?" for r in results if r.connected)
    return dict(counts.most_common())


def classify_errno(code: int) -> str:
    return "refused" if code in REFUSED_ERRNOS else "error"


def run_probes(kernel: Kernel, probes: Sequence[Probe], *, count: int = 1, concurrency: int = 512) -> list[ProbeResult]:
    """Run every probe `count` times; results in input order (probe 0's attempts first)."""
    return _Run(kernel, probes, count, concurrency).run()


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class _Attempt:
    index: int
    probe: Probe
    attempt: int
    sock: socket.socket | None = None
    started: float = 0.0
    deadline: float = 0.0
    resend_at: float | None = None
    stage: str = "new"  # tcp: connecting -> reading; udp/sctp: waiting
    buf: bytearray = field(default_factory=bytearray)
    sport: int | None = None
    tag: int = 0  # SCTP initiate tag
    packet: bytes = b""  # what to resend (SCTP INIT)
    result: ProbeResult | None = None


@dataclass
class _RawSctp:
    """The raw SCTP socket of one source netns and the attempts waiting on it."""

    sock: socket.socket
    by_tag: dict[int, _Attempt] = field(default_factory=dict)
    by_ports: dict[tuple[int, int], _Attempt] = field(default_factory=dict)  # (our port, target port)


class _Run:
    def __init__(self, kernel: Kernel, probes: Sequence[Probe], count: int, concurrency: int):
        if count < 1 or concurrency < 1:
            raise ValueError("count and concurrency must be at least 1")
        self.kernel = kernel
        self.concurrency = concurrency
        self.pending: deque[_Attempt] = deque(
            _Attempt(i * count + a, p, a) for i, p in enumerate(probes) for a in range(count))
        self.results: list[ProbeResult | None] = [None] * len(self.pending)
        self.active: dict[int, _Attempt] = {}
        self.sel = selectors.DefaultSelector()
        self.raw: dict[str, _RawSctp] = {}
        self.used_ports: dict[str, set[int]] = {}  # per netns, UDP and SCTP source ports of this run
        self.rng = random.Random(secrets.randbits(64))

    def run(self) -> list[ProbeResult]:
        try:
            while self.pending or self.active:
                if self.pending and len(self.active) < self.concurrency:
                    self._launch([self.pending.popleft()
                                  for _ in range(min(len(self.pending), self.concurrency - len(self.active)))])
                self._poll()
        finally:
            for att in list(self.active.values()):
                self._finish(att, "error", error="probe run aborted")
            for raw in self.raw.values():
                raw.sock.close()
            self.sel.close()
        return [r for r in self.results if r is not None]

    # -- launching ------------------------------------------------------------------------------------
    def _launch(self, batch: list[_Attempt]) -> None:
        by_ns: dict[str, list[_Attempt]] = {}
        for att in batch:
            by_ns.setdefault(att.probe.netns, []).append(att)
        for ns, atts in by_ns.items():
            kinds = [a.probe.protocol for a in atts if a.probe.protocol != "SCTP"]
            need_raw = ns not in self.raw and any(a.probe.protocol == "SCTP" for a in atts)
            try:
                socks, raw = self.kernel.call_in(ns, lambda k=kinds, r=need_raw: _make_sockets(k, r))
            except Exception as exc:  # a missing namespace, fd exhaustion: these attempts fail, others go on
                now = time.monotonic()
                for att in atts:
                    att.started = now
                    self.active[att.index] = att
                    self._finish(att, "error", error=f"cannot open sockets in {ns}: {exc}")
                continue
            if raw is not None:
                self.raw[ns] = _RawSctp(raw)
                self.sel.register(raw, selectors.EVENT_READ, self.raw[ns])
            it = iter(socks)
            for att in atts:
                att.started = time.monotonic()
                att.deadline = att.started + att.probe.timeout
                self.active[att.index] = att
                try:
                    if att.probe.protocol == "TCP":
                        self._start_tcp(att, next(it))
                    elif att.probe.protocol == "UDP":
                        self._start_udp(att, next(it))
                    else:
                        self._start_sctp(att)
                except OSError as exc:
                    self._fail_errno(att, exc)

    def _start_tcp(self, att: _Attempt, sock: socket.socket) -> None:
        att.sock = sock
        rc = sock.connect_ex((att.probe.target, att.probe.port))
        att.sport = sock.getsockname()[1]
        if rc == 0:
            att.stage = "reading"
            _half_close(sock)
            self.sel.register(sock, selectors.EVENT_READ, att)
        elif rc in (errno.EINPROGRESS, errno.EAGAIN):
            att.stage = "connecting"
            self.sel.register(sock, selectors.EVENT_WRITE, att)
        else:
            raise OSError(rc, os.strerror(rc))

    def _source_port(self, ns: str) -> int:
        used = self.used_ports.setdefault(ns, set())
        for _ in range(1000):
            port = self.rng.randint(*EPHEMERAL)
            if port not in used:
                used.add(port)
                return port
        raise OSError(errno.EADDRINUSE, "no free source port")

    def _start_udp(self, att: _Attempt, sock: socket.socket) -> None:
        att.sock = sock
        for tries in range(20):
            port = self._source_port(att.probe.netns)
            try:
                sock.bind(("0.0.0.0", port))
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or tries == 19:
                    raise
        att.sport = sock.getsockname()[1]
        sock.connect((att.probe.target, att.probe.port))
        att.stage = "waiting"
        self.sel.register(sock, selectors.EVENT_READ, att)
        att.packet = UDP_PAYLOAD
        sock.send(att.packet)
        self._plan_resend(att)

    def _start_sctp(self, att: _Attempt) -> None:
        raw = self.raw[att.probe.netns]
        att.sport = self._source_port(att.probe.netns)
        att.tag = secrets.randbits(32) or 1
        while att.tag in raw.by_tag:
            att.tag = secrets.randbits(32) or 1
        att.packet = sctp.build_init(att.sport, att.probe.port, att.tag, secrets.randbits(32))
        raw.by_tag[att.tag] = att
        raw.by_ports[(att.sport, att.probe.port)] = att
        att.stage = "waiting"
        raw.sock.sendto(att.packet, (att.probe.target, 0))
        self._plan_resend(att)

    def _plan_resend(self, att: _Attempt) -> None:
        at = att.started + RETRANSMIT_AFTER
        att.resend_at = at if at < att.deadline - 0.2 else None

    def _resend(self, att: _Attempt) -> None:
        att.resend_at = None
        try:
            if att.probe.protocol == "UDP" and att.sock is not None:
                att.sock.send(att.packet)
            elif att.probe.protocol == "SCTP":
                self.raw[att.probe.netns].sock.sendto(att.packet, (att.probe.target, 0))
        except OSError as exc:
            self._fail_errno(att, exc)

    # -- the loop -------------------------------------------------------------------------------------
    def _poll(self) -> None:
        now = time.monotonic()
        wake = min((min(a.deadline, a.resend_at or a.deadline) for a in self.active.values()), default=now)
        events = self.sel.select(timeout=max(0.0, wake - now)) if self.active else []
        for key, mask in events:
            obj = key.data
            if isinstance(obj, _RawSctp):
                self._on_raw(obj)
            elif isinstance(obj, _Attempt) and obj.result is None:
                try:
                    self._on_socket(obj, mask)
                except OSError as exc:
                    self._fail_errno(obj, exc)
        now = time.monotonic()
        for att in list(self.active.values()):
            if att.deadline <= now:
                if att.stage == "reading":
                    self._finish(att, "connected", error="connected, but no answer before the timeout")
                else:
                    self._finish(att, "timeout")
            elif att.resend_at is not None and att.resend_at <= now:
                self._resend(att)

    def _on_socket(self, att: _Attempt, mask: int) -> None:
        sock = att.sock
        assert sock is not None
        if att.stage == "connecting":
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err in (0, errno.EINPROGRESS) and not mask & selectors.EVENT_WRITE:
                return
            if err:
                raise OSError(err, os.strerror(err))
            att.stage = "reading"
            _half_close(sock)
            self.sel.modify(sock, selectors.EVENT_READ, att)
            return
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if att.stage == "reading":  # connected, then reset before the answer came
                self._finish(att, "connected", error=f"connection lost before the answer: {exc.strerror}")
                return
            raise
        if att.probe.protocol == "UDP":
            self._answered(att, data)
            return
        att.buf += data
        if not data or b"\n" in att.buf:
            self._answered(att, bytes(att.buf))

    def _answered(self, att: _Attempt, data: bytes) -> None:
        ident = identity.decode(data)
        if ident is None:
            self._finish(att, "connected", error="answer is not a netsim identity")
            return
        self._finish(att, "connected", answer=ident)

    def _on_raw(self, raw: _RawSctp) -> None:
        # Queued ICMP errors keep the socket polling "error" until read, whatever recv() says.
        self._drain_errqueue(raw)
        for _ in range(256):
            try:
                data = raw.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the pending error of an ICMP message that is also in the queue
                self._drain_errqueue(raw)
                continue
            try:
                ip = sctp.parse_ipv4(data)
                pkt = sctp.parse(ip.payload)
            except sctp.SctpParseError:
                continue
            if not pkt.checksum_ok or pkt.first_type not in (sctp.CHUNK_INIT_ACK, sctp.CHUNK_ABORT):
                continue
            att = raw.by_tag.get(pkt.vtag)
            if att is None or att.result is not None or (pkt.dst_port, pkt.src_port) != (att.sport, att.probe.port):
                continue
            if pkt.first_type == sctp.CHUNK_ABORT:
                if not pkt.chunks[0].flags & sctp.ABORT_T_BIT:
                    self._finish(att, "refused", error=f"ABORT from {ip.src}")
                continue
            init = pkt.init
            cookie = init.state_cookie if init else None
            if cookie is None:
                self._finish(att, "connected", error="INIT-ACK without a state cookie")
                continue
            ident = identity.decode(cookie)
            if ident is None:
                self._finish(att, "connected", error="state cookie is not a netsim identity")
            else:
                self._finish(att, "connected", answer=ident)

    def _drain_errqueue(self, raw: _RawSctp) -> None:
        """ICMP errors about INITs we sent: the queued payload starts with our SCTP header."""
        for _ in range(256):
            try:
                data, anc, _flags, _addr = raw.sock.recvmsg(512, 512, socket.MSG_ERRQUEUE)
            except OSError:
                return
            code = None
            for level, ctype, cdata in anc:
                if level == SOL_IP and ctype == IP_RECVERR and len(cdata) >= _SOCK_EXTENDED_ERR.size:
                    code = _SOCK_EXTENDED_ERR.unpack_from(cdata)[0]
            if code is None or len(data) < 4:
                continue
            sport, dport = struct.unpack_from("!HH", data)
            att = raw.by_ports.get((sport, dport))
            if att is not None and att.result is None:
                self._fail_errno(att, OSError(code, os.strerror(code)))

    # -- finishing ------------------------------------------------------------------------------------
    def _fail_errno(self, att: _Attempt, exc: OSError) -> None:
        code = exc.errno or 0
        self._finish(att, classify_errno(code), error=exc.strerror or str(exc))

    def _finish(self, att: _Attempt, outcome: str, *, error: str | None = None,
                answer: dict[str, Any] | None = None) -> None:
        if att.result is not None:
            return
        ms = (time.monotonic() - att.started) * 1000.0
        att.result = ProbeResult(
            att.probe, outcome, served_by=answer.get("pod") if answer else None,
            client_ip=answer.get("clientIP") if answer else None, ms=ms, error=error, attempt=att.attempt,
            source_port=att.sport, answer=answer)
        self.results[att.index] = att.result
        self.active.pop(att.index, None)
        if att.sock is not None:
            try:
                self.sel.unregister(att.sock)
            except (KeyError, ValueError):
                pass
            att.sock.close()
        if att.probe.protocol == "SCTP":
            raw = self.raw.get(att.probe.netns)
            if raw is not None:
                raw.by_tag.pop(att.tag, None)
                raw.by_ports.pop((att.sport or 0, att.probe.port), None)


def _make_sockets(kinds: list[str], need_raw: bool) -> tuple[list[socket.socket], socket.socket | None]:
    """Runs inside the source netns: one client socket per TCP/UDP attempt, the raw SCTP one if needed."""
    made: list[socket.socket] = []
    raw = None
    try:
        for kind in kinds:
            stype = socket.SOCK_STREAM if kind == "TCP" else socket.SOCK_DGRAM
            made.append(socket.socket(socket.AF_INET, stype | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC))
        if need_raw:
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                sctp.IPPROTO_SCTP)
            raw.setsockopt(SOL_IP, IP_RECVERR, 1)
    except OSError:
        for s in made:
            s.close()
        if raw is not None:
            raw.close()
        raise
    return made, raw


def _half_close(sock: socket.socket) -> None:
    """A TCP probe sends nothing: its FIN right after the handshake tells the workload server, which waits a
    moment for an HTTP request before it answers a silent client, to answer with the identity at once."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
