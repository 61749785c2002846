"""Sniffing a connection's first bytes and the HTTP/1.x the workload server speaks (no sockets)."""

from __future__ import annotations

import pytest

from netsim.workload import http


@pytest.mark.parametrize("data, kind", [
    (b"GET / HTTP/1.1\r\n", http.HTTP1), (b"HEAD ", http.HTTP1), (b"POST /x", http.HTTP1),
    (b"G", http.UNDECIDED), (b"GE", http.UNDECIDED), (b"P", http.UNDECIDED), (b"PRI * HTTP/2", http.UNDECIDED),
    (http.H2_PREFACE, http.H2), (http.H2_PREFACE + b"\0\0", http.H2),
    (b"hello", http.OTHER), (b"GETX", http.OTHER), (b"\x16\x03\x01", http.OTHER), (b"{\"a\"", http.OTHER),
    (b"", http.UNDECIDED),
])
def test_first_bytes_classify(data, kind):
    assert http.classify(data) == kind


def test_pipelined_requests_bodies_and_leftovers():
    buf = (b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabc"
           b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /c HTTP/1.1\r\nHo")
    reqs, rest = http.parse_requests(buf)
    assert [(r.method, r.target, r.version) for r in reqs] == [("POST", "/a", "HTTP/1.1"), ("GET", "/b", "HTTP/1.0")]
    assert reqs[0].headers["x-a"] == "1, 2" and reqs[0].keep_alive and reqs[1].keep_alive
    assert rest == b"GET /c HTTP/1.1\r\nHo"
    partial_body = b"PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"
    assert http.parse_requests(partial_body) == ([], partial_body)


@pytest.mark.parametrize("head, keep", [("HTTP/1.1", True), ("HTTP/1.0", False)])
def test_persistence_follows_the_version_and_connection_header(head, keep):
    (req,), _ = http.parse_requests(f"GET / {head}\r\n\r\n".encode())
    assert req.keep_alive is keep
    (req,), _ = http.parse_requests(f"GET / {head}\r\nConnection: Close\r\n\r\n".encode())
    assert req.keep_alive is False


@pytest.mark.parametrize("bad, status", [(b"GET /\r\n\r\n", 400), (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
                                         (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
                                         (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
                                         (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
                                         (b"GET / HTTP/1.1\r\nA: " + b"x" * (http.MAX_HEAD + 1), 431)])
def test_what_no_server_answers_200(bad, status):
    with pytest.raises(http.BadRequest) as err:
        http.parse_requests(bad)
    assert err.value.status == status


def test_answers_carry_the_identity_or_the_hostname():
    (req,), _ = http.parse_requests(b"GET /hostname?x=1 HTTP/1.1\r\n\r\n")
    assert http.body_for(req, "web-1", b"{}\n") == (b"web-1", "text/plain; charset=utf-8")
    (req,), _ = http.parse_requests(b"GET / HTTP/1.1\r\n\r\n")
    assert http.body_for(req, "web-1", b"{}\n") == (b"{}\n", "application/json")
    resp = http.response(200, "OK", b"{}\n", "application/json", close=True)
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 3" in head and b"Connection: close" in head
    assert body == b"{}\n"
    assert http.response(200, "OK", b"{}\n", "x", close=False, head=True).endswith(b"\r\n\r\n")
