"""HTTP/1.1 response framing of the keep-alive load clients."""

from __future__ import annotations

import pytest

from netsim.load.keepalive import parse_response


def test_a_response_is_complete_only_with_its_whole_body():
    whole = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello"
    assert parse_response(whole[:-1]) is None and parse_response(whole[:20]) is None
    assert parse_response(whole + b"HTTP/1.1") == (200, b"hello", len(whole))
    assert parse_response(b"HTTP/1.1 204 No Content\r\n\r\n") == (204, b"", 27)
    assert parse_response(b"HTTP/1.0 503 Busy\r\ncontent-length: 0\r\n\r\n")[0] == 503


def test_what_is_not_http_is_refused():
    with pytest.raises(ValueError, match="not an HTTP response"):
        parse_response(b'{"pod": "x"}\r\n\r\n')
    with pytest.raises(ValueError, match="too large"):
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n")
