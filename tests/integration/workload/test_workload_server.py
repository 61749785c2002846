"""The workload server on the real kernel, checked with plain blocking client sockets (not the prober)."""

from __future__ import annotations

import errno
import json
import socket
import time

import pytest

from netsim.workload import sctp

pytestmark = pytest.mark.root


def tcp_ask(kernel, ns: str, ip: str, port: int) -> tuple[dict, int]:
    """Connect from `ns`, read the identity line; returns it and our source port."""
    def _ask():
        with socket.create_connection((ip, port), timeout=5) as s:
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return json.loads(data), s.getsockname()[1]
    return kernel.call_in(ns, _ask)


def udp_ask(kernel, ns: str, ip: str, port: int) -> tuple[dict, int]:
    def _ask():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.connect((ip, port))
            s.send(b"hello")
            return json.loads(s.recv(4096)), s.getsockname()[1]
    return kernel.call_in(ns, _ask)


def tcp_refused(kernel, ns: str, ip: str, port: int) -> bool:
    def _try():
        with socket.socket() as s:
            s.settimeout(5)
            return s.connect_ex((ip, port)) == errno.ECONNREFUSED
    return kernel.call_in(ns, _try)


def test_tcp_and_udp_answer_with_the_identity(kernel, netpair, workload):
    assert workload.serve("y/b", "n1", netpair.b, [(80, "TCP"), (53, "UDP")]) == {(80, "TCP"): True,
                                                                                  (53, "UDP"): True}
    assert workload.ready("y/b") and workload.listening("y/b") == [(53, "UDP"), (80, "TCP")]
    ident, sport = tcp_ask(kernel, netpair.a, netpair.ip_b, 80)
    assert ident == {"pod": "y/b", "node": "n1", "clientIP": netpair.ip_a, "clientPort": sport, "port": 80,
                     "protocol": "TCP"}
    ident, sport = udp_ask(kernel, netpair.a, netpair.ip_b, 53)
    assert ident == {"pod": "y/b", "node": "n1", "clientIP": netpair.ip_a, "clientPort": sport, "port": 53,
                     "protocol": "UDP"}


@pytest.mark.parametrize("max_lingering", [20000, 0])
def test_tcp_client_that_talks_first_is_drained_not_reset(kernel, netpair, max_lingering):
    """Data the client sent is read before the close, so the connection ends with FIN and no reset: the
    client can still write. With lingering off (max_lingering=0) the close meets unread data, the kernel
    aborts the connection (RST), and the client's next write fails."""
    from netsim.workload.server import WorkloadServer
    srv = WorkloadServer(kernel, max_lingering=max_lingering)
    try:
        srv.serve("y/b", "n1", netpair.b, [(8080, "TCP")])

        def _connect():
            s = socket.create_connection((netpair.ip_b, 8080), timeout=5)
            s.sendall(b"HELO netsim\r\n")  # not HTTP; queued with the connection before the server accepts
            return s
        s = kernel.call_in(netpair.a, _connect)
        time.sleep(0.05)
        srv.start()
        data = b""
        with s:
            while chunk := s.recv(4096):
                data += chunk
            assert json.loads(data)["pod"] == "y/b"
            time.sleep(0.2)  # a reset, if any, has arrived
            try:
                s.sendall(b"more")
                write_failed = False
            except OSError:
                write_failed = True
        assert write_failed == (max_lingering == 0)
    finally:
        srv.stop()


def test_udp_answer_comes_from_the_address_asked(kernel, netpair, workload, made_namespaces):
    """A second address on the server side: the reply must come from it, or a connected client drops it."""
    kernel.addr_add(netpair.b, "eth0", f"10.250.{netpair.subnet}.9/24")
    workload.serve("y/b", "n1", netpair.b, [(53, "UDP")])
    ident, _ = udp_ask(kernel, netpair.a, f"10.250.{netpair.subnet}.9", 53)
    assert ident["pod"] == "y/b"


def test_sctp_init_gets_init_ack_with_identity(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, [(7777, "SCTP")])
    assert workload.listening("y/b") == [(7777, "SCTP")]

    def _init():
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, sctp.IPPROTO_SCTP) as s:
            s.settimeout(5)
            s.sendto(sctp.build_init(41000, 7777, 0xA1B2C3D4, 1), (netpair.ip_b, 0))
            while True:
                ip = sctp.parse_ipv4(s.recv(65535))
                pkt = sctp.parse(ip.payload)
                if pkt.dst_port == 41000:
                    return ip, pkt
    ip, pkt = kernel.call_in(netpair.a, _init)
    assert ip.src == netpair.ip_b and pkt.checksum_ok and pkt.vtag == 0xA1B2C3D4
    assert pkt.first_type == sctp.CHUNK_INIT_ACK and pkt.init is not None
    assert json.loads(pkt.init.state_cookie) == {"pod": "y/b", "node": "n1", "clientIP": netpair.ip_a,
                                                 "clientPort": 41000, "port": 7777, "protocol": "SCTP"}


def test_unserve_closes_and_reserve_converges(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, [(80, "TCP"), (81, "TCP")])
    workload.serve("y/b", "n1", netpair.b, [(81, "TCP"), (82, "TCP")])
    assert workload.listening("y/b") == [(81, "TCP"), (82, "TCP")]
    assert tcp_refused(kernel, netpair.a, netpair.ip_b, 80)
    assert tcp_ask(kernel, netpair.a, netpair.ip_b, 82)[0]["port"] == 82
    assert workload.unserve("y/b")
    assert workload.listening("y/b") == [] and workload.pods() == []
    assert tcp_refused(kernel, netpair.a, netpair.ip_b, 81)


def test_two_pods_sharing_a_netns_cannot_take_the_same_port(kernel, netpair, workload):
    """hostNetwork pods on one node share its netns: the second claim on a port fails, that pod is not ready."""
    workload.serve("kube-system/one", "n1", netpair.b, [(9000, "TCP"), (9000, "UDP"), (9000, "SCTP")])
    status = workload.serve("kube-system/two", "n1", netpair.b, [(9000, "TCP"), (9000, "UDP"), (9000, "SCTP"),
                                                                 (9001, "TCP")])
    assert status == {(9000, "TCP"): False, (9000, "UDP"): False, (9000, "SCTP"): False, (9001, "TCP"): True}
    assert workload.ready("kube-system/one") and not workload.ready("kube-system/two")
    assert "in use" in workload.failures("kube-system/two")[(9000, "TCP")]
    assert tcp_ask(kernel, netpair.a, netpair.ip_b, 9000)[0]["pod"] == "kube-system/one"
    workload.unserve("kube-system/one")
    assert workload.serve("kube-system/two", "n1", netpair.b, [(9000, "TCP"), (9000, "SCTP")]) == {
        (9000, "TCP"): True, (9000, "SCTP"): True}


def test_serve_before_start_answers_once_started(kernel, netpair):
    from netsim.workload.server import WorkloadServer
    srv = WorkloadServer(kernel)
    try:
        srv.serve("y/b", "n1", netpair.b, [(80, "TCP")])
        srv.start()
        assert tcp_ask(kernel, netpair.a, netpair.ip_b, 80)[0]["pod"] == "y/b"
    finally:
        srv.stop()
    assert tcp_refused(kernel, netpair.a, netpair.ip_b, 80)


def test_a_sandbox_recreated_under_the_same_name_is_served_afresh(kernel, netpair, workload):
    """The old sockets keep the deleted namespace (and its veth) alive until they are closed, which is why
    the kubelet unserves before it removes a sandbox; a re-serve after a recreate must not keep them."""
    workload.serve("y/b", "n1", netpair.b, [(80, "TCP"), (7777, "SCTP")])
    kernel.netns_delete(netpair.b)
    assert kernel.link_get(netpair.a, "eth0") is not None  # held by the server's sockets
    kernel.link_del(netpair.a, "eth0")
    kernel.netns_create(netpair.b)
    kernel.veth_add(netpair.a, "eth0", netpair.b, "eth0")
    kernel.addr_add(netpair.b, "eth0", f"{netpair.ip_b}/24")
    kernel.addr_add(netpair.a, "eth0", f"{netpair.ip_a}/24")
    assert workload.serve("y/b", "n1", netpair.b, [(80, "TCP"), (7777, "SCTP")]) == {(80, "TCP"): True,
                                                                                     (7777, "SCTP"): True}
    assert tcp_ask(kernel, netpair.a, netpair.ip_b, 80)[0]["pod"] == "y/b"


def _http(kernel, ns: str, ip: str, port: int, payload: bytes, *, half_close: bool = False) -> bytes:
    """Send `payload`, read until the server closes; everything it said."""
    def _go():
        with socket.create_connection((ip, port), timeout=5) as s:
            s.sendall(payload)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data
    return kernel.call_in(ns, _go)


def test_http_requests_get_http_answers_and_other_clients_the_identity(kernel, netpair, workload):
    """The first bytes decide: an HTTP/1.1 request is answered 200 (keep-alive honoured, pipelined requests
    answered in order, `Connection: close` closes), anything else gets the identity line as before."""
    workload.serve("y/web", "n1", netpair.b, [(8080, "TCP")])
    data = _http(kernel, netpair.a, netpair.ip_b, 8080,
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" not in first
    length = int(next(h for h in first.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
    assert json.loads(rest[:length])["pod"] == "y/web"
    second, _, body = rest[length:].partition(b"\r\n\r\n")
    assert second.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in second and body == b"web"
    head = _http(kernel, netpair.a, netpair.ip_b, 8080, b"HEAD / HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")  # HTTP/1.0: closed, no body
    other = _http(kernel, netpair.a, netpair.ip_b, 8080, b"hello\n")
    assert json.loads(other)["pod"] == "y/web"
    t0 = time.monotonic()
    assert json.loads(_http(kernel, netpair.a, netpair.ip_b, 8080, b"", half_close=True))["pod"] == "y/web"
    from netsim.workload.server import SNIFF_WINDOW
    assert time.monotonic() - t0 < SNIFF_WINDOW  # a client that half-closes at once is not kept for the window
    assert tcp_ask(kernel, netpair.a, netpair.ip_b, 8080)[0]["pod"] == "y/web"  # silent: after the window


def test_grpc_health_check_over_h2c_is_answered_serving(kernel, netpair, workload):
    """The kubelet's grpc prober (a real HTTP/2 gRPC client) asks Health/Check of a played container's port
    and gets SERVING; the same port still answers HTTP/1.1 and plain TCP clients."""
    from netsim.node.grpc_probe import grpc_check
    workload.serve("y/g", "n1", netpair.b, [(9090, "TCP")])
    assert kernel.call_in(netpair.a, lambda: grpc_check(netpair.ip_b, 9090, "", 2.0)) == (True, "")
    assert kernel.call_in(netpair.a, lambda: grpc_check(netpair.ip_b, 9090, "my.Service", 2.0)) == (True, "")
    ok, why = kernel.call_in(netpair.a, lambda: grpc_check(netpair.ip_b, 9091, "", 2.0))
    assert not ok and why.startswith(f'timeout: failed to connect service "{netpair.ip_b}:9091" within 2s') \
        and "connection refused" in why
    assert _http(kernel, netpair.a, netpair.ip_b, 9090, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert workload.answered["GRPC"] >= 2
