"""Probe definitions, the result JSON contract, spread counting, and failures that need no sockets."""

from __future__ import annotations

import errno

import pytest

from netsim.kernel.fake import FakeKernel
from netsim.probe.engine import Probe, ProbeResult, classify_errno, run_probes, spread

CONTRACT_KEYS = ["from", "to", "target", "port", "protocol", "connected", "servedBy", "clientIP", "ms",
                 "outcome", "error"]


def test_result_json_has_the_architecture_shape():
    p = Probe("netsim-c-pod-x-a", "x/a", "10.244.1.5", 80, "tcp", to="y/b")
    r = ProbeResult(p, "connected", served_by="y/b", client_ip="10.244.2.3", ms=0.41234)
    assert r.to_json() == {"from": "x/a", "to": "y/b", "target": "10.244.1.5", "port": 80, "protocol": "TCP",
                           "connected": True, "servedBy": "y/b", "clientIP": "10.244.2.3", "ms": 0.412,
                           "outcome": "connected", "error": None}
    assert list(r.to_json()) == CONTRACT_KEYS


def test_unanswered_result_is_not_connected_and_names_the_target_by_ip_by_default():
    r = ProbeResult(Probe("ns", "node/n1", "10.96.0.10", 53, "UDP"), "timeout", ms=2000.0)
    j = r.to_json()
    assert (j["connected"], j["to"], j["servedBy"], j["clientIP"], j["outcome"]) == (
        False, "10.96.0.10", None, None, "timeout")


@pytest.mark.parametrize(("kw", "msg"), [({"protocol": "ICMP"}, "protocol"), ({"port": 0}, "port"),
                                         ({"port": 70000}, "port"),
                                         ({"target": "web.default"}, "octets"), ({"timeout": 0}, "timeout")])
def test_bad_probes_are_rejected(kw, msg):
    args = {"netns": "ns", "source": "x/a", "target": "10.0.0.1", "port": 80, **kw}
    with pytest.raises(ValueError, match=msg):
        Probe(**args)


def test_spread_counts_connected_attempts_by_pod():
    p = Probe("ns", "x/a", "10.96.0.1", 80)
    results = [ProbeResult(p, "connected", served_by="y/b"), ProbeResult(p, "connected", served_by="y/c"),
               ProbeResult(p, "connected", served_by="y/b"), ProbeResult(p, "timeout"),
               ProbeResult(p, "connected")]
    assert spread(results) == {"y/b": 2, "y/c": 1, "?": 1}
    assert list(spread(results))[0] == "y/b"


def test_errnos_are_classified():
    assert classify_errno(errno.ECONNREFUSED) == "refused"
    assert classify_errno(errno.EHOSTUNREACH) == "refused"
    assert classify_errno(errno.EPERM) == "refused"
    assert classify_errno(errno.EMFILE) == "error"


def test_missing_source_namespace_is_an_error_result_in_input_order():
    probes = [Probe("netsim-tnope-a", "x/a", "10.0.0.1", 80, "TCP"),
              Probe("netsim-tnope-b", "x/b", "10.0.0.1", 53, "UDP"),
              Probe("netsim-tnope-a", "x/a", "10.0.0.1", 7777, "SCTP")]
    results = run_probes(FakeKernel(), probes, count=2)
    assert [(r.probe, r.attempt) for r in results] == [(p, a) for p in probes for a in range(2)]
    assert all(r.outcome == "error" and "netsim-tnope" in (r.error or "") for r in results)


def test_run_validates_arguments_and_accepts_nothing():
    assert run_probes(FakeKernel(), []) == []
    with pytest.raises(ValueError):
        run_probes(FakeKernel(), [], count=0)
