"""The load generator against the workload server on the real kernel: every outcome, both loops, UDP."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from netsim.load.generator import Source, Target, run_load

pytestmark = pytest.mark.root


def _go(kernel, netpair, port, proto="TCP", **kw):
    kw.setdefault("duration", 0.5)
    kw.setdefault("timeout", 0.5)
    return run_load(kernel, [Source("x/a", netpair.a)], Target(netpair.ip_b, port, proto), **kw).report()


def test_open_loop_sends_at_the_rate_and_every_request_is_answered(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, [(80, "TCP")])
    rep = _go(kernel, netpair, 80, rate=400, duration=1.0, workers=2)
    assert rep["mode"] == "open" and rep["sent"] == 400 and rep["ok"] == 400, rep
    assert rep["byEndpoint"] == {"y/b": 400}
    assert [r["second"] for r in rep["series"]] == [0] and rep["series"][0]["ok"] == 400
    assert 0 < rep["latencyMs"]["p50"] <= rep["latencyMs"]["p99"] <= rep["latencyMs"]["max"] < 500


def test_a_closed_port_is_refused_and_a_drop_times_out(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, [(80, "TCP")])
    kernel.iptables_restore(netpair.a, "*filter\n-A OUTPUT -p tcp --dport 8081 -j DROP\nCOMMIT\n")
    refused = _go(kernel, netpair, 81, rate=100)
    assert refused["refused"] == refused["sent"] == 50 and refused["ok"] == 0, refused
    dropped = _go(kernel, netpair, 8081, rate=40, timeout=0.3)
    assert dropped["timeout"] == dropped["sent"] == 20, dropped
    assert dropped["latencyMs"]["p50"] is None  # latency is of the requests that succeeded


def test_a_server_that_resets_counts_as_reset(kernel, netpair):
    """A listener that aborts every connection (SO_LINGER 0) is what a killed process looks like."""
    def listen() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 7070))
        s.listen(512)
        return s
    srv = kernel.call_in(netpair.b, listen)
    srv.settimeout(0.2)
    stop = threading.Event()

    def abort_all() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
    t = threading.Thread(target=abort_all, daemon=True)
    t.start()
    try:
        rep = _go(kernel, netpair, 7070, rate=60)
    finally:
        stop.set()
        t.join()
        srv.close()
    assert rep["reset"] == rep["sent"] == 30, rep


def test_closed_loop_keeps_n_clients_busy_on_keep_alive_connections(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, [(80, "TCP")])
    before = workload.answered["HTTP"]
    rep = _go(kernel, netpair, 80, connections=3, duration=0.5)
    assert rep["mode"] == "closed" and rep["ok"] == rep["sent"] > 30, rep
    assert workload.answered["HTTP"] - before == rep["ok"]  # HTTP requests, not identity connections
    assert workload.requests["y/b"] >= rep["ok"]
    # with a rate: open loop over the keep-alive connections, each on its own schedule
    paced = _go(kernel, netpair, 80, connections=2, rate=40, duration=0.5)
    assert paced["mode"] == "open" and paced["ok"] == paced["sent"] and 18 <= paced["sent"] <= 22, paced


def test_udp_requests_are_datagrams_answered_by_the_server(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, [(53, "UDP")])
    rep = _go(kernel, netpair, 53, "UDP", rate=100)
    assert rep["ok"] == rep["sent"] == 50 and rep["byEndpoint"] == {"y/b": 50}, rep
    none = _go(kernel, netpair, 54, "UDP", rate=20)
    # ICMP port unreachable, which the kernel rate-limits per peer (net.ipv4.icmp_ratelimit, a token bucket
    # with a burst of 6): past the burst a datagram gets no answer at all, as a real client sees it.
    assert none["ok"] == 0 and none["refused"] >= 5 and none["refused"] + none["timeout"] == none["sent"] == 10, none


def test_a_vanished_source_namespace_is_an_error_per_request_not_a_crash(kernel, netpair, workload):
    rep = run_load(kernel, [Source("x/gone", "netsim-twl-nosuch")], Target(netpair.ip_b, 80),
                   duration=0.2, rate=50, workers=1).report()
    assert rep["error"] == rep["sent"] == 10 and "cannot open a socket" in next(iter(rep["errors"])), rep
