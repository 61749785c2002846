"""The shards' pure parts: the listener cap's parsing, the framing of the agent-shard stream, a shard's answer
to a request it does not know."""

from __future__ import annotations

import socket
import threading

import pytest

from netsim.workload import shards
from netsim.workload.shard import handle


def test_the_listener_cap_is_a_positive_number_or_absent(monkeypatch):
    monkeypatch.delenv(shards.CAP_ENV, raising=False)
    assert shards.listener_cap() is None
    monkeypatch.setenv(shards.CAP_ENV, " 12 ")
    assert shards.listener_cap() == 12
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv(shards.CAP_ENV, bad)
        with pytest.raises(ValueError, match=shards.CAP_ENV):
            shards.listener_cap()


def test_messages_cross_the_stream_whole_however_the_bytes_are_split():
    a, b = socket.socketpair()
    big = {"requests": {f"ns/pod-{i}": i for i in range(20000)}}  # ~500 KB: many recv() calls
    sender = threading.Thread(target=lambda: [shards.send_message(a, m) for m in ({"op": "stats"}, big)])
    sender.start()
    assert shards.recv_message(b) == {"op": "stats"}
    assert shards.recv_message(b) == big
    sender.join()
    a.close()
    assert shards.recv_message(b) is None  # the end of the stream: the agent is gone
    b.close()


def test_a_request_the_shard_does_not_know_is_answered_with_an_error():
    assert handle(None, {"op": "reboot"}) == {"error": "unknown request 'reboot'"}  # type: ignore[arg-type]
