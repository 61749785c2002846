"""Cluster DNS on a real kernel: the server in netns a, a client in netns b on a veth (10.251.x.0/24).

Queries over UDP and TCP with dnslib, a snapshot swap, unserve, and glibc's resolver walking the search
path of a pod-style resolv.conf written to /etc/netns/<b>/resolv.conf (`ip netns exec` binds it).
Nothing is created in the root network namespace; both namespaces and the /etc/netns/<b> directory are
removed even when a test fails.
"""

from __future__ import annotations

import errno
import secrets
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from netsim.dns.records import PodInfo, Snapshot
from netsim.dns.resolvconf import NETNS_ETC, remove_resolv_conf, write_resolv_conf
from netsim.dns.server import DnsServer, SnapshotHolder
from netsim.model.endpointslice import parse_endpointslice
from netsim.model.errors import Source
from netsim.model.service import parse_service

pytestmark = pytest.mark.root

SRC = Source("<test>")
D = "default.svc.cluster.local."


def _snapshot() -> Snapshot:
    web = parse_service({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                         "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}, SRC)
    db = parse_service({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                        "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}, SRC)
    db_eps = parse_endpointslice({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}}, "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432}],
        "endpoints": [{"addresses": ["10.244.1.10"], "hostname": "db-0"},
                      {"addresses": ["10.244.2.11"], "hostname": "db-1"}]}, SRC)
    return Snapshot((web, db), (db_eps,), (PodInfo("default", "db-0", ips=("10.244.1.10",)),), serial=7)


@pytest.fixture
def dns_pair(kernel):
    """(server, holder, client netns, server address), all torn down afterwards whatever happens."""
    tag = secrets.token_hex(3)
    a, b = f"netsim-tdns{tag}-a", f"netsim-tdns{tag}-b"
    octet = secrets.randbelow(254) + 1
    server_ip, client_ip = f"10.251.{octet}.1", f"10.251.{octet}.2"
    holder = SnapshotHolder(_snapshot())
    server = DnsServer(kernel, holder, "cluster.local")
    try:
        kernel.netns_create(a)
        kernel.netns_create(b)
        kernel.veth_add(a, "dnsa0", b, "dnsb0")
        kernel.addr_add(a, "dnsa0", f"{server_ip}/24")
        kernel.addr_add(b, "dnsb0", f"{client_ip}/24")
        server.serve(a)
        server.start()
        yield server, holder, a, b, server_ip
    finally:
        server.stop()
        remove_resolv_conf(b)
        shutil.rmtree(Path(NETNS_ETC) / b, ignore_errors=True)
        kernel.netns_delete(b)
        kernel.netns_delete(a)


def _udp(kernel, ns: str, ip: str, q: DNSRecord) -> DNSRecord:
    def go() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(q.pack(), (ip, 53))
            return s.recv(65535)
    return DNSRecord.parse(kernel.call_in(ns, go))


def _tcp(kernel, ns: str, ip: str, *queries: DNSRecord) -> list[DNSRecord]:
    def go() -> list[bytes]:
        with socket.create_connection((ip, 53), timeout=3) as s:
            for q in queries:  # several queries on one connection, as resolvers do
                data = q.pack()
                s.sendall(struct.pack("!H", len(data)) + data)
            out = []
            f = s.makefile("rb")
            for _ in queries:
                (size,) = struct.unpack("!H", f.read(2))
                out.append(f.read(size))
            return out
    return [DNSRecord.parse(x) for x in kernel.call_in(ns, go)]


def test_udp_and_tcp_queries_from_another_namespace(kernel, dns_pair):
    server, holder, a, b, ip = dns_pair
    r = _udp(kernel, b, ip, DNSRecord.question(f"web.{D}", "A"))
    assert r.header.rcode == RCODE.NOERROR and r.header.aa == 1
    assert [str(x.rdata) for x in r.rr] == ["10.96.0.20"]

    r = _udp(kernel, b, ip, DNSRecord.question(f"_pg._tcp.db.{D}", "SRV"))
    assert sorted((x.rdata.port, str(x.rdata.target)) for x in r.rr) == [(5432, f"db-0.db.{D}"),
                                                                         (5432, f"db-1.db.{D}")]
    assert sorted(str(x.rdata) for x in r.ar) == ["10.244.1.10", "10.244.2.11"]

    r = _udp(kernel, b, ip, DNSRecord.question("20.0.96.10.in-addr.arpa", "PTR"))
    assert [str(x.rdata) for x in r.rr] == [f"web.{D}"]

    r = _udp(kernel, b, ip, DNSRecord.question(f"nope.{D}", "A"))
    assert r.header.rcode == RCODE.NXDOMAIN and [x.rtype for x in r.auth] == [QTYPE.SOA]

    tcp = _tcp(kernel, b, ip, DNSRecord.question(f"db-0.db.{D}", "A"), DNSRecord.question(f"web.{D}", "SRV"),
               DNSRecord.question("example.com", "A"))
    assert [str(x.rdata) for x in tcp[0].rr] == ["10.244.1.10"]
    assert [(x.rdata.port, str(x.rdata.target)) for x in tcp[1].rr] == [(80, f"web.{D}")]
    assert tcp[2].header.rcode == RCODE.REFUSED
    assert server.answered["udp"] >= 4 and server.answered["tcp"] == 3


def test_a_new_snapshot_is_served_and_unserve_closes_the_port(kernel, dns_pair):
    server, holder, a, b, ip = dns_pair
    server.serve(a)  # serving twice is a no-op, not EADDRINUSE
    assert server.serving() == [a]
    holder.set(Snapshot(serial=8))
    r = _udp(kernel, b, ip, DNSRecord.question(f"web.{D}", "A"))
    assert r.header.rcode == RCODE.NXDOMAIN and r.auth[0].rdata.times[0] == 8
    assert server.unserve(a) is True and server.serving() == []
    with pytest.raises(ConnectionRefusedError):
        _tcp(kernel, b, ip, DNSRecord.question(f"web.{D}", "A"))
    assert server.unserve(a) is False


def test_glibc_resolves_short_names_through_the_search_path(kernel, dns_pair):
    server, holder, a, b, ip = dns_pair
    path = write_resolv_conf(b, f"search default.svc.cluster.local svc.cluster.local cluster.local\n"
                                f"nameserver {ip}\noptions ndots:5 timeout:1 attempts:1\n")
    assert path == Path(NETNS_ETC) / b / "resolv.conf"

    def getent(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", b, "getent", "ahostsv4", name], capture_output=True,
                              text=True, timeout=20)
    short = getent("web")
    assert short.returncode == 0, short.stderr
    assert short.stdout.split()[0] == "10.96.0.20"
    assert "web.default.svc.cluster.local" in short.stdout  # the canonical name found via the search list
    assert getent("db-0.db").stdout.split()[0] == "10.244.1.10"  # 'db-0.db' + 'default.svc.cluster.local'
    assert getent("web.default").stdout.split()[0] == "10.96.0.20"  # + 'svc.cluster.local'
    assert getent("nope").returncode == 2  # not found anywhere on the search path


def test_serving_a_missing_namespace_fails_cleanly(kernel, dns_pair):
    server, _holder, a, _b, _ip = dns_pair
    with pytest.raises(OSError) as e:
        server.serve("netsim-tdns-does-not-exist")
    assert e.value.errno == errno.ENOENT
    assert server.serving() == [a]


def test_one_server_serves_several_namespaces(kernel, dns_pair):
    server, holder, a, b, ip = dns_pair
    server.serve(b, "127.0.0.1")  # e.g. a second DNS pod; here the client's own loopback
    assert server.serving() == sorted([a, b])
    local = _udp(kernel, b, "127.0.0.1", DNSRecord.question(f"web.{D}", "A"))
    remote = _udp(kernel, b, ip, DNSRecord.question(f"web.{D}", "A"))
    assert [str(x.rdata) for x in local.rr] == [str(x.rdata) for x in remote.rr] == ["10.96.0.20"]
    server.unserve(b)
    assert _udp(kernel, b, ip, DNSRecord.question(f"web.{D}", "A")).header.rcode == RCODE.NOERROR


def test_tcp_queries_split_across_segments(kernel, dns_pair):
    server, holder, a, b, ip = dns_pair
    data = DNSRecord.question(f"web.{D}", "A").pack()
    msg = struct.pack("!H", len(data)) + data

    def go() -> bytes:
        import time
        with socket.create_connection((ip, 53), timeout=3) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(msg[:1])
            time.sleep(0.05)
            s.sendall(msg[1:7])
            time.sleep(0.05)
            s.sendall(msg[7:])
            f = s.makefile("rb")
            (size,) = struct.unpack("!H", f.read(2))
            return f.read(size)
    r = DNSRecord.parse(kernel.call_in(b, go))
    assert [str(x.rdata) for x in r.rr] == ["10.96.0.20"]


def test_port_53_taken_in_the_namespace_is_an_error_not_a_silent_split(kernel, dns_pair):
    server, holder, a, b, ip = dns_pair
    squatter = kernel.call_in(b, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        kernel.call_in(b, lambda: squatter.bind(("0.0.0.0", 53)))
        with pytest.raises(OSError) as e:
            server.serve(b)
        assert e.value.errno == errno.EADDRINUSE
        assert server.serving() == [a]
    finally:
        squatter.close()
