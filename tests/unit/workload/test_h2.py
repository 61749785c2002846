"""The minimal HTTP/2 + HPACK the workload server's gRPC health answers and the grpc prober use."""

from __future__ import annotations

import pytest

from netsim.workload import h2


def test_hpack_decodes_indexed_literal_and_incremental_fields_with_the_dynamic_table():
    d = h2.Decoder()
    # :method GET (indexed 2); literal with incremental indexing, name :path (4), value /x; new-name literal.
    block = bytes([0x82, 0x44, 0x02]) + b"/x" + bytes([0x00, 0x01]) + b"a" + bytes([0x01]) + b"b"
    assert d.decode(block) == [(":method", "GET"), (":path", "/x"), ("a", "b")]
    assert d.decode(bytes([0x80 | 62])) == [(":path", "/x")]  # the first dynamic entry
    with pytest.raises(h2.HuffmanCoded):
        d.decode(bytes([0x04, 0x81, 0xFF]))
    with pytest.raises(h2.H2Error):
        d.decode(bytes([0x80 | 99]))


def test_encode_round_trips_and_long_values_use_multibyte_integers():
    fields = [(":status", "200"), ("grpc-status", "0"), ("x-long", "v" * 300)]
    assert h2.Decoder().decode(h2.encode(fields)) == fields


def test_health_messages():
    assert h2.response_status(h2.health_response(1)) == 1
    assert h2.response_status(b"") == 0
    assert h2.health_request("") == b"" and h2.health_request("svc") == b"\x0a\x03svc"
    assert list(h2.grpc_messages(h2.grpc_message(b"ab") + h2.grpc_message(b""))) == [b"ab", b""]


def _request(path: str, stream: int = 1) -> bytes:
    head = h2.encode([(":method", "POST"), (":path", path), ("content-type", "application/grpc")])
    return (h2.frame(h2.HEADERS, h2.END_HEADERS, stream, head)
            + h2.frame(h2.DATA, h2.END_STREAM, stream, h2.grpc_message(b"")))


def _answers(out: bytes) -> dict[int, list]:
    frames, rest = h2.frames(out)
    assert rest == b""
    d, got = h2.Decoder(), {}
    for f in frames:
        if f.type == h2.HEADERS:
            got.setdefault(f.stream, []).append(dict(d.decode(h2.header_block(f))))
        elif f.type == h2.DATA:
            got.setdefault(f.stream, []).append([h2.response_status(m) for m in h2.grpc_messages(f.payload)])
    return got


def test_health_server_answers_check_serving_and_other_methods_unimplemented():
    srv = h2.HealthServer()
    out = srv.feed(h2.PREFACE[:10])
    assert out == b""
    out = srv.feed(h2.PREFACE[10:] + h2.frame(h2.SETTINGS, 0, 0) + h2.frame(h2.PING, 0, 0, b"12345678"))
    frames, _ = h2.frames(out)
    assert [(f.type, f.flags) for f in frames] == [(h2.SETTINGS, 0), (h2.SETTINGS, h2.ACK), (h2.PING, h2.ACK)]
    got = _answers(srv.feed(_request(h2.HEALTH_CHECK, 1) + _request("/pkg.Svc/Other", 3)))
    assert got[1] == [{":status": "200", "content-type": "application/grpc"}, [1], {"grpc-status": "0"}]
    assert got[3][0]["grpc-status"] == "12"
    with pytest.raises(h2.H2Error):
        h2.HealthServer().feed(b"GET / HTTP/1.1\r\n\r\n" + b"x" * 20)


def test_malformed_input_after_the_preface_is_an_h2_error_never_another_exception():
    import random
    rng = random.Random(7)
    good = h2.frame(h2.SETTINGS, 0, 0) + _request(h2.HEALTH_CHECK)
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            h2.HealthServer().feed(h2.PREFACE + bytes(data[:rng.randint(0, len(data))]))
        except h2.H2Error:
            pass
