"""The cluster's servers under malformed input, on the real kernel: thousands of bad packets and broken
connections from a pod to the cluster DNS (UDP and TCP) and to a pod's TCP, UDP and SCTP ports; then a
well-formed query/connection still works, `netsim status` says every component runs, and no handler
raised. One small cluster for the module, removed by name whatever happens. Seeded, bounded in time."""

from __future__ import annotations

import json
import random
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from netsim import lifecycle, naming
from netsim.api import Cluster
from netsim.workload import sctp
from tests.conftest import run_netsim, unique_name

pytestmark = pytest.mark.root

MANIFEST = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
     "spec": {"containers": [{"name": "c", "image": "x", "ports": [
         {"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 8081, "protocol": "UDP"},
         {"containerPort": 8082, "protocol": "SCTP"}]}]}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
     "spec": {"containers": [{"name": "c", "image": "x"}]}},
]
KUBERNETES = "kubernetes.default.svc.cluster.local."


@pytest.fixture(scope="module")
def cluster(kernel) -> Iterator[Cluster]:
    name = unique_name("fz")
    c = None
    try:
        c = Cluster.up({"metadata": {"name": name}, "spec": {"nodes": 1}}, timeout=60)
        c.apply(MANIFEST)
        yield c
    finally:
        if c is not None:
            c.close()
        lifecycle.down(kernel, name)


def _ip(c: Cluster, ns: str, pred) -> str:
    return next(p["status"]["podIP"] for p in c.pods(ns) if pred(p))


def _sock(c: Cluster, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket inside the client pod's namespace."""
    return c.kernel.call_in(naming.pod_ns(c.name, "default", "client"), lambda: socket.socket(family, kind, proto))


def _mutants(rng: random.Random, seeds: list[bytes], n: int) -> Iterator[bytes]:
    for _ in range(n):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(4)
            if op == 0 and data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif op == 1:
                del data[rng.randrange(len(data) + 1):]
            elif op == 2:
                data += rng.randbytes(rng.randint(1, 600))
            elif data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        yield bytes(data)


def _long_name_query(ident: int) -> bytes:
    name = b"".join(bytes([63]) + b"a" * 63 for _ in range(5)) + b"\0"  # 321 bytes on the wire
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)


def _dns_seeds() -> list[bytes]:
    return [DNSRecord.question(KUBERNETES, t).pack() for t in ("A", "SRV", "PTR", "AAAA")] + [_long_name_query(7)]


def _udp_ask(c: Cluster, ip: str, payload: bytes, port: int = 53, tries: int = 5) -> bytes:
    s = _sock(c, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(1.0)
        for _ in range(tries):
            s.sendto(payload, (ip, port))
            try:
                return s.recv(65535)
            except TimeoutError:
                continue
        raise AssertionError(f"no answer from {ip}:{port}")
    finally:
        s.close()


def _tcp_dns(c: Cluster, ip: str, query: bytes) -> bytes:
    s = _sock(c, socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect((ip, 53))
        s.sendall(struct.pack("!H", len(query)) + query)
        buf = b""
        while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
            chunk = s.recv(65535)
            assert chunk, "connection closed before the answer"
            buf += chunk
        return buf[2:]
    finally:
        s.close()


def _abuse_tcp(c: Cluster, ip: str, port: int, rng: random.Random, n: int, payloads: list[bytes]) -> None:
    """Connections that send garbage, huge payloads, nothing (half-open), or end with a reset."""
    for i in range(n):
        s = _sock(c, socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.connect((ip, port))
            mode = i % 5
            if mode == 0:
                s.sendall(rng.choice(payloads))
            elif mode == 1:
                s.sendall(rng.randbytes(rng.randint(1, 4096)))
            elif mode == 2 and i % 25 == 2:
                s.sendall(rng.randbytes(1 << 20))  # huge
            elif mode == 3:
                s.shutdown(socket.SHUT_WR)  # half-open
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        except OSError:
            pass
        finally:
            s.close()


def _status(c: Cluster) -> dict:
    r = run_netsim("status", "--cluster", c.name, "-o", "json", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)["daemon"]["components"]


def _assert_healthy(c: Cluster, *names: str) -> None:
    deadline = time.monotonic() + 5
    while True:
        comps = _status(c)
        if all(comps.get(n, {}).get("state") == "running" for n in names) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    for n in names:
        assert comps[n]["state"] == "running", comps
        assert comps[n].get("handlerErrors", 0) == 0, comps[n]


def test_cluster_dns_survives_malformed_queries(cluster):
    c, rng = cluster, random.Random(7)
    dns_ip = _ip(c, "kube-system", lambda p: p["metadata"]["name"].startswith("coredns"))
    # the packet that used to kill the DNS thread: answered with FORMERR
    r = DNSRecord.parse(_udp_ask(c, dns_ip, _long_name_query(0x4242)))
    assert r.header.id == 0x4242 and r.header.rcode == RCODE.FORMERR
    t0 = time.monotonic()
    s = _sock(c, socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    try:
        for i, pkt in enumerate(_mutants(rng, _dns_seeds(), 4000)):
            s.sendto(pkt, (dns_ip, 53))
            if i % 200 == 199:
                time.sleep(0.01)  # let the server keep up: the point is parsing, not queue overflow
                while True:
                    try:
                        s.recv(65535)
                    except BlockingIOError:
                        break
        for pkt in (b"", b"\x00", rng.randbytes(65000)):
            s.sendto(pkt, (dns_ip, 53))
    finally:
        s.close()
    framed = [struct.pack("!H", len(p)) + p for p in _mutants(rng, _dns_seeds(), 100)]
    framed += [b"\xff\xff" + b"x" * 10, b"\x00\x00", b"\x00\x05ab", struct.pack("!H", 333) + _long_name_query(1)]
    _abuse_tcp(c, dns_ip, 53, rng, 300, framed)
    assert time.monotonic() - t0 < 60
    for ask in (lambda q: _udp_ask(c, dns_ip, q), lambda q: _tcp_dns(c, dns_ip, q)):
        q = DNSRecord.question(KUBERNETES, "A")
        r = DNSRecord.parse(ask(q.pack()))
        assert r.header.id == q.header.id and r.header.rcode == RCODE.NOERROR
        assert [str(x.rdata) for x in r.rr if x.rtype == QTYPE.A] == ["10.96.0.1"]
    _assert_healthy(c, "dns", "reconcile")


def test_workload_server_survives_malformed_input(cluster):
    c, rng = cluster, random.Random(11)
    web = _ip(c, "default", lambda p: p["metadata"]["name"] == "web")
    t0 = time.monotonic()
    _abuse_tcp(c, web, 8080, rng, 300, [b"GET / HTTP/1.1\r\n\r\n", b"\0" * 100])
    s = _sock(c, socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    try:
        for i in range(3000):
            s.sendto(rng.randbytes(rng.choice([0, 1, 7, 100, 1400, 9000])), (web, 8081))
            if i % 200 == 199:
                time.sleep(0.01)
                while True:
                    try:
                        s.recv(65535)
                    except BlockingIOError:
                        break
    finally:
        s.close()
    raw = _sock(c, socket.AF_INET, socket.SOCK_RAW, sctp.IPPROTO_SCTP)
    try:
        good = sctp.build_init(40000, 8082, 1234, 1)
        seeds = [good, good[:12], sctp.build_init(40001, 9999, 5, 5)]
        for pkt in [*_mutants(rng, seeds, 3000), b"", b"\x00" * 11, rng.randbytes(2000)]:
            raw.sendto(pkt, (web, 0))
    finally:
        raw.close()
    assert time.monotonic() - t0 < 60
    results = c.probe("default/client", "default/web", timeout=3)
    assert sorted((r.probe.protocol, r.outcome) for r in results) == [
        ("SCTP", "connected"), ("TCP", "connected"), ("UDP", "connected")], [r.to_json() for r in results]
    _assert_healthy(c, "workload", "reconcile")
