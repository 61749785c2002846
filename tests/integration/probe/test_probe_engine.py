"""The probe engine against the workload server on the real kernel: outcomes, NAT, spread, scale."""

from __future__ import annotations

import time

import pytest
from twl_netns import make_hub

from netsim.kernel.api import Route
from netsim.probe.engine import Probe, run_probes, spread

pytestmark = pytest.mark.root

PORTS = [(80, "TCP"), (53, "UDP"), (7777, "SCTP")]


def probe_all(kernel, netpair, ports, timeout=2.0, target=None):
    """Probe `ports` from a to b (or to `target`), all at once."""
    probes = [Probe(netpair.a, "x/a", target or netpair.ip_b, port, proto, timeout=timeout, to="y/b")
              for port, proto in ports]
    return run_probes(kernel, probes)


def test_connected_with_the_servers_identity(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, PORTS)
    results = probe_all(kernel, netpair, PORTS)
    for r, (port, proto) in zip(results, PORTS):
        assert r.outcome == "connected", r.to_json()
        assert r.to_json() | {"ms": 0} == {
            "from": "x/a", "to": "y/b", "target": netpair.ip_b, "port": port, "protocol": proto,
            "connected": True, "servedBy": "y/b", "clientIP": netpair.ip_a, "ms": 0, "outcome": "connected",
            "error": None}
        assert r.answer["clientPort"] == r.source_port and r.answer["node"] == "n1"
        assert r.ms < 2000


def test_closed_ports_are_refused(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, PORTS)
    results = probe_all(kernel, netpair, [(81, "TCP"), (54, "UDP"), (7778, "SCTP")])
    assert [r.outcome for r in results] == ["refused"] * 3, [r.to_json() for r in results]
    assert results[2].error.startswith("ABORT")


def test_sctp_to_a_namespace_without_sctp_is_refused_by_icmp(kernel, netpair, workload):
    """Nobody serves SCTP in b: its kernel answers protocol unreachable, read from the raw socket's error queue."""
    results = probe_all(kernel, netpair, [(7777, "SCTP")])
    assert results[0].outcome == "refused" and "Protocol not available" in results[0].error, results[0].to_json()


def test_reject_rule_is_refused_and_drop_rule_times_out(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, PORTS + [(8080, "TCP"), (5353, "UDP")])
    kernel.iptables_restore(netpair.b, "\n".join([
        "*filter",
        "-A INPUT -p tcp --dport 8080 -j REJECT --reject-with tcp-reset",
        "-A INPUT -p udp --dport 5353 -j REJECT",
        "-A INPUT -p tcp --dport 80 -j DROP",
        "-A INPUT -p udp --dport 53 -j DROP",
        "-A INPUT -p sctp --dport 7777 -j DROP",
        "COMMIT", ""]))
    start = time.monotonic()
    results = probe_all(kernel, netpair, [(8080, "TCP"), (5353, "UDP"), *PORTS], timeout=1.0)
    took = time.monotonic() - start
    assert [r.outcome for r in results] == ["refused", "refused", "timeout", "timeout", "timeout"], [
        r.to_json() for r in results]
    assert all(not r.connected and r.served_by is None for r in results)
    assert all(r.ms >= 990 for r in results[2:])
    assert took < 6, "the timeouts run concurrently, not one after another"


def test_through_dnat_to_a_virtual_ip(kernel, netpair, workload):
    """A kube-proxy-like DNAT in the client netns: answers come back through conntrack (SCTP included)."""
    workload.serve("y/b", "n1", netpair.b, PORTS)
    vip = "10.96.77.7"
    rules = ["*nat"] + [f"-A OUTPUT -d {vip}/32 -p {proto.lower()} --dport {port} -j DNAT "
                        f"--to-destination {netpair.ip_b}:{port}" for port, proto in PORTS] + ["COMMIT", ""]
    kernel.iptables_restore(netpair.a, "\n".join(rules))
    kernel.route_replace(netpair.a, Route(dst="10.96.0.0/12", dev="eth0"))
    results = probe_all(kernel, netpair, PORTS, target=vip)
    assert [(r.outcome, r.served_by, r.client_ip) for r in results] == [
        ("connected", "y/b", netpair.ip_a)] * 3, [r.to_json() for r in results]


def test_count_uses_distinct_source_ports_and_spreads_over_endpoints(kernel, made_namespaces, workload):
    hub = make_hub(kernel, made_namespaces, 3)
    for i, (ns, _ip) in enumerate(hub.pods):
        workload.serve(f"y/p{i}", "n1", ns, PORTS)
    vip = "10.96.88.8"
    rules = ["*nat"]
    for port, proto in PORTS:  # kube-proxy's iptables mode: probability 1/3, 1/2, then the rest
        for i, (_ns, ip) in enumerate(hub.pods):
            stat = f"-m statistic --mode random --probability {1 / (3 - i):.5f} " if i < 2 else ""
            rules.append(f"-A OUTPUT -d {vip}/32 -p {proto.lower()} --dport {port} {stat}-j DNAT "
                         f"--to-destination {ip}:{port}")
    kernel.iptables_restore(hub.hub, "\n".join([*rules, "COMMIT", ""]))
    kernel.route_replace(hub.hub, Route(dst="10.96.0.0/12", dev="br0"))
    probes = [Probe(hub.hub, "host/h", vip, port, proto, timeout=3.0, to="svc/y/web") for port, proto in PORTS]
    results = run_probes(kernel, probes, count=30)
    assert len(results) == 90 and all(r.connected for r in results), [r.to_json() for r in results if not r.connected]
    for k, (_port, proto) in enumerate(PORTS):
        mine = results[k * 30:(k + 1) * 30]
        assert [r.attempt for r in mine] == list(range(30)) and all(r.probe.protocol == proto for r in mine)
        assert len({r.source_port for r in mine}) == 30
        assert all(r.answer["clientPort"] == r.source_port for r in mine)
        counts = spread(mine)
        assert set(counts) == {"y/p0", "y/p1", "y/p2"}, (proto, counts)  # P(a pod gets none) ~ 3 * (2/3)^30


def test_one_server_serves_100_pods_and_300_probes_run_at_once(kernel, made_namespaces, workload):
    hub = make_hub(kernel, made_namespaces, 100)
    for i, (ns, _ip) in enumerate(hub.pods):
        assert workload.serve(f"y/p{i}", "n1", ns, PORTS) == {k: True for k in PORTS}
    assert all(workload.ready(f"y/p{i}") for i in range(100))
    probes = [Probe(hub.hub, "host/h", ip, port, proto, timeout=5.0)
              for (_ns, ip) in hub.pods for port, proto in PORTS]
    start = time.monotonic()
    results = run_probes(kernel, probes)
    took = time.monotonic() - start
    bad = [r.to_json() for r in results if not r.connected]
    assert not bad, bad[:5]
    assert [r.served_by for r in results] == [f"y/p{i}" for i in range(100) for _ in PORTS]
    assert all(r.client_ip == hub.hub_ip for r in results)
    assert took < 5, f"300 probes took {took:.2f}s"
    for i in range(100):
        workload.unserve(f"y/p{i}")
    assert workload.pods() == []


def test_missing_source_namespace_is_an_error_and_others_still_run(kernel, netpair, workload):
    workload.serve("y/b", "n1", netpair.b, PORTS)
    good = Probe(netpair.a, "x/a", netpair.ip_b, 80)
    missing = Probe("netsim-twlmissing-x", "x/gone", netpair.ip_b, 80)
    results = run_probes(kernel, [missing, good])
    assert [r.outcome for r in results] == ["error", "connected"]
