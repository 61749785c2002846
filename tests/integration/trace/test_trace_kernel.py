"""The trace primitives on a real kernel: a -> r -> b with DNAT, a drop rule and masquerade in r, and a
VXLAN pair over a veth underlay. Everything lives in throwaway namespaces `netsim-ttr<random>-*`, removed
by the fixture finaliser whatever happens; nothing touches the root namespace."""

from __future__ import annotations

import secrets
import time

import pytest

from netsim.kernel.api import Route
from netsim.trace.observe import conntrack
from netsim.trace.observe.capture import PacketCapture, tag_filter
from netsim.trace.observe.conntrack import ConntrackWatcher, flow_entries
from netsim.trace.observe.inject import inject_probe
from netsim.trace.observe.nftrace import DEFAULT_TABLE, NftTracer, decisions
from netsim.trace.observe.tag import TraceTag

pytestmark = pytest.mark.root

VIP = "10.252.9.9"
B_IP = "10.252.2.2"

R_RULES = f"""*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SVC-WEB - [0:0]
-A PREROUTING -d {VIP}/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-SVC-WEB
-A PREROUTING -d {VIP}/32 -p udp -m comment --comment "default/dns cluster IP" -m udp --dport 53 -j DNAT --to-destination {B_IP}:5353
-A KUBE-SVC-WEB -p tcp -m comment --comment "default/web -> {B_IP}:8080" -j DNAT --to-destination {B_IP}:8080
-A POSTROUTING -s 10.252.1.0/24 -o eth-b -p icmp -m comment --comment "masquerade icmp" -j MASQUERADE
COMMIT
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 81 -m comment --comment "cali:drop-81" -j DROP
-A FORWARD -d 10.252.2.0/24 -m comment --comment "allow to b" -j ACCEPT
COMMIT
"""


@pytest.fixture
def namespaces(kernel):
    """A factory of namespaces named netsim-ttr<random>-<suffix>; all deleted at the end."""
    prefix = f"netsim-ttr{secrets.token_hex(3)}"
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"{prefix}-{suffix}"
        kernel.netns_create(name)
        made.append(name)
        return name
    yield make
    for name in made:
        kernel.netns_delete(name)


@pytest.fixture
def routed(kernel, namespaces):
    """a (10.252.1.2) -> r (forwarding, iptables-nft rules) -> b (10.252.2.2)."""
    a, r, b = namespaces("a"), namespaces("r"), namespaces("b")
    kernel.veth_add(a, "eth0", r, "eth-a")
    kernel.veth_add(b, "eth0", r, "eth-b")
    kernel.addr_add(a, "eth0", "10.252.1.2/24")
    kernel.addr_add(r, "eth-a", "10.252.1.1/24")
    kernel.addr_add(b, "eth0", f"{B_IP}/24")
    kernel.addr_add(r, "eth-b", "10.252.2.1/24")
    kernel.route_replace(a, Route(dst="default", via="10.252.1.1"))
    kernel.route_replace(b, Route(dst="default", via="10.252.2.1"))
    kernel.sysctl_set(r, "net.ipv4.ip_forward", 1)
    kernel.iptables_restore(r, R_RULES)
    return a, r, b


def _tables(kernel, ns: str) -> str:
    return kernel.run(ns, ["nft", "list", "tables"]).stdout


def test_dnat_is_traced_to_rules_conntrack_and_capture(kernel, routed, tmp_path):
    from scapy.all import rdpcap
    from scapy.layers.inet import IP, TCP

    a, r, b = routed
    tag = TraceTag.random("tcp")
    watcher = ConntrackWatcher(kernel, r)
    tracer = NftTracer(kernel, [a, r, b], tag)
    capture = PacketCapture(kernel, [(b, "eth0")], match=tag_filter(tag))
    try:
        t0 = time.monotonic()
        tracer.start()
        capture.start()
        assert DEFAULT_TABLE in _tables(kernel, r)
        probe = inject_probe(kernel, a, VIP, tag, 80)
        events = tracer.collect(timeout=2, settle=0.3)
        packets = capture.collect(timeout=2, settle=0.3)
        elapsed = time.monotonic() - t0
    finally:
        tracer.stop()
        capture.stop()
    print(f"trace round trip (3 namespaces, setup+inject+collect+rules): {elapsed * 1000:.0f} ms")
    assert probe.src == "10.252.1.2"
    for ns in (a, r, b):
        assert DEFAULT_TABLE not in _tables(kernel, ns)

    # The source sent it out of eth0; b saw it arrive on eth0 (only the tagging table is there).
    [out] = [e for e in events[a] if e.tagging and e.chain == "output" and e.handle]
    assert out.oif_name == "eth0" and out.packet.dst == VIP
    [arrive] = [e for e in events[b] if e.tagging and e.handle]
    assert arrive.iif_name == "eth0" and (arrive.packet.dst, arrive.packet.dport) == (B_IP, 8080)

    # In r: the Service rule (with kube-proxy's comment), the DNAT, the FORWARD accept rule.
    steps = decisions(events[r])
    assert [(e.table, e.chain, e.type, e.outcome) for e in steps] == [
        ("nat", "PREROUTING", "rule", "jump"), ("nat", "KUBE-SVC-WEB", "rule", "accept"),
        ("filter", "FORWARD", "rule", "accept"), ("nat", "POSTROUTING", "policy", "accept")]
    svc, dnat, fwd, _post = steps
    assert svc.rule.comment == "default/web cluster IP" and svc.target == "KUBE-SVC-WEB"
    assert svc.iif_name == "eth-a" and svc.packet.dst == VIP
    assert "-j DNAT --to-destination 10.252.2.2:8080" in dnat.rule.iptables
    assert fwd.rule.comment == "allow to b" and (fwd.iif_name, fwd.oif_name) == ("eth-a", "eth-b")
    fwd_seen = next(e for e in events[r] if e.chain == "FORWARD" and e.packet)
    assert (fwd_seen.packet.dst, fwd_seen.packet.dport) == (B_IP, 8080)  # after DNAT
    assert svc.chain_info.hook == "prerouting" and len({e.trace_id for e in events[r]}) == 1
    assert "default/web cluster IP" in svc.describe()

    # conntrack in r: the entry was created with the DNAT'd reply tuple (and died at b's RST).
    flow = flow_entries(watcher.read(), tag)
    watcher.close()
    assert flow and flow[0].event == "new"
    assert flow[0].dnat and not flow[0].snat and flow[0].translated_dst == (B_IP, 8080)
    assert str(flow[0].original) == f"10.252.1.2:{tag.sport} -> {VIP}:80"

    # Capture on b's eth0: exactly the probe, DNAT'd, with a kernel timestamp; pcap readable by scapy.
    [pkt] = packets
    assert pkt.direction == "host" and pkt.info.packet.dst == B_IP and pkt.info.packet.dport == 8080
    assert abs(pkt.ts_ns / 1e9 - probe.sent_at) < 2
    path = tmp_path / "b.pcap"
    capture.write_pcap(path)
    [read] = rdpcap(str(path))
    assert read[IP].id == tag.ip_id and read[TCP].flags == "S" and read[TCP].dport == 8080
    assert abs(float(read.time) - pkt.ts_ns / 1e9) < 1e-6


def test_drop_rule_is_named(kernel, routed):
    a, r, b = routed
    tag = TraceTag.random("tcp")
    with NftTracer(kernel, [a, r, b], tag) as tracer, \
            PacketCapture(kernel, [(b, "eth0")], match=tag_filter(tag)) as capture:
        inject_probe(kernel, a, B_IP, tag, 81)
        events = tracer.collect(timeout=2, settle=0.3)
        packets = capture.collect(timeout=0.5, settle=0.3)
    [drop] = [e for e in decisions(events[r]) if e.chain == "FORWARD"]
    assert drop.verdict == "drop" and drop.decisive
    assert drop.rule.comment == "cali:drop-81" and drop.rule.iptables.endswith("-j DROP")
    assert "tcp dport 81" in drop.rule.nft
    assert events[b] == [] and packets == []


def test_udp_dnat_entry_can_be_dumped(kernel, routed):
    a, r, b = routed
    tag = TraceTag.random("udp")
    inject_probe(kernel, a, VIP, tag, 53)
    deadline = time.monotonic() + 2
    entries = []
    while not entries and time.monotonic() < deadline:
        entries = conntrack.lookup(kernel, r, proto="udp", src="10.252.1.2", sport=tag.sport)
    [entry] = entries
    assert entry.dnat and entry.translated_dst == (B_IP, 5353) and entry.original.dport == 53
    assert conntrack.lookup(kernel, r, proto="udp", sport=tag.sport ^ 1) == []


@pytest.mark.parametrize("proto,dport", [("udp", 9999), ("icmp", None), ("sctp", 3868)])
def test_every_probe_protocol_arrives_tagged(kernel, routed, proto, dport):
    a, r, b = routed
    tag = TraceTag.random(proto)
    watcher = ConntrackWatcher(kernel, r)
    try:
        with NftTracer(kernel, [r], tag) as tracer, \
                PacketCapture(kernel, [(b, "eth0")], match=tag_filter(tag)) as capture:
            inject_probe(kernel, a, B_IP, tag, dport)
            events = tracer.collect(timeout=2, settle=0.3)
            packets = capture.collect(timeout=2, settle=0.3)
        flow = flow_entries(watcher.read(), tag)
    finally:
        watcher.close()
    [pkt] = packets
    assert pkt.info.packet.proto_name == proto
    fwd = [e for e in decisions(events[r]) if e.chain == "FORWARD"]
    assert fwd and fwd[-1].verdict == "accept"
    if proto == "icmp":  # masqueraded in r: the source b sees is r's address
        assert pkt.info.packet.src == "10.252.2.1"
        post = [e for e in decisions(events[r]) if e.chain == "POSTROUTING"]
        assert post and post[0].rule.comment == "masquerade icmp"
        assert flow and flow[0].snat and flow[0].translated_src[0] == "10.252.2.1"
        [dumped] = conntrack.lookup(kernel, r, proto="icmp", sport=tag.sport)  # echo entries live 30 s
        assert dumped.snat and dumped.original.icmp_id == tag.sport
    else:
        assert pkt.info.packet.src == "10.252.1.2"


def test_vxlan_capture_shows_outer_headers_and_vni(kernel, namespaces, tmp_path):
    from scapy.all import rdpcap
    from scapy.layers.vxlan import VXLAN

    v1, v2 = namespaces("v1"), namespaces("v2")
    kernel.veth_add(v1, "eth0", v2, "eth0")
    macs = {v1: "0a:52:00:00:00:01", v2: "0a:52:00:00:00:02"}
    under = {v1: "10.252.100.1", v2: "10.252.100.2"}
    over = {v1: "10.252.200.1", v2: "10.252.200.2"}
    for ns, peer in ((v1, v2), (v2, v1)):
        kernel.addr_add(ns, "eth0", f"{under[ns]}/24")
        kernel.vxlan_add(ns, "vx0", vni=42, dev="eth0", local=under[ns], port=8472, mac=macs[ns], mtu=1450)
        kernel.addr_add(ns, "vx0", f"{over[ns]}/24")
        kernel.neigh_replace(ns, "vx0", over[peer], macs[peer])  # flannel-style: ARP and FDB programmed
        kernel.fdb_replace(ns, "vx0", macs[peer], under[peer])
    tag = TraceTag.random("tcp")
    points = [(v1, "eth0"), (v2, "eth0"), (v2, "vx0")]
    with NftTracer(kernel, [v1, v2], tag) as tracer, PacketCapture(kernel, points, match=tag_filter(tag)) as cap:
        inject_probe(kernel, v1, over[v2], tag, 80)
        events = tracer.collect(timeout=2, settle=0.3)
        packets = cap.collect(timeout=2, settle=0.3)
    by_point = {(p.ns, p.ifname, p.direction): p for p in packets}
    assert set(by_point) == {(v1, "eth0", "outgoing"), (v2, "eth0", "host"), (v2, "vx0", "host")}
    for key in ((v1, "eth0", "outgoing"), (v2, "eth0", "host")):
        info = by_point[key].info
        assert (info.outer.src, info.outer.dst, info.outer.proto_name) == (under[v1], under[v2], "udp")
        assert info.outer.dport == 8472 and info.vni == 42
        assert (info.inner.src, info.inner.dst, info.inner.dport) == (over[v1], over[v2], 80)
        assert info.inner_dst_mac == macs[v2]
        assert "vxlan vni=42" in by_point[key].summary()
    decap = by_point[(v2, "vx0", "host")].info
    assert decap.vni is None and decap.outer.dst == over[v2]
    [arrive] = [e for e in events[v2] if e.tagging and e.handle]
    assert arrive.iif_name == "vx0"
    path = tmp_path / "vxlan.pcap"
    cap.write_pcap(path)
    pcap = rdpcap(str(path))
    assert len(pcap) == 3 and [p[VXLAN].vni for p in pcap if p.haslayer(VXLAN)] == [42, 42]


def test_two_tracers_in_one_namespace_see_only_their_packet(kernel, routed):
    a, r, b = routed
    t1, t2 = TraceTag.random("tcp"), TraceTag.random("udp")
    with NftTracer(kernel, [r], t1, table="netsim_trace_1") as one, \
            NftTracer(kernel, [r], t2, table="netsim_trace_2") as two:
        inject_probe(kernel, a, VIP, t1, 80)
        inject_probe(kernel, a, VIP, t2, 53)
        ev1 = one.collect(timeout=2, settle=0.3)[r]
        ev2 = two.collect(timeout=2, settle=0.3)[r]
    assert ev1 and ev2 and {e.trace_id for e in ev1}.isdisjoint({e.trace_id for e in ev2})
    assert {e.packet.proto_name for e in ev1 if e.packet} == {"tcp"}
    assert {e.packet.proto_name for e in ev2 if e.packet} == {"udp"}
    assert [e.rule.comment for e in decisions(ev2) if e.chain == "PREROUTING"] == ["default/dns cluster IP"]
    tables = _tables(kernel, r)
    assert "netsim_trace_1" not in tables and "netsim_trace_2" not in tables


def test_observe_wires_everything_and_cleans_up(kernel, routed, tmp_path):
    from scapy.all import rdpcap

    from netsim.trace.observe.roundtrip import observe

    a, r, b = routed
    tag = TraceTag.random("tcp")
    obs = observe(kernel, a, VIP, tag, 80, namespaces=[r, b], capture_points=[(r, "eth-a"), (b, "eth0")],
                  pcap=tmp_path / "obs.pcap", settle=0.3)
    print(f"observe() round trip (3 namespaces, 2 capture points, settle 0.3 s): {obs.elapsed * 1000:.0f} ms")
    assert set(obs.events) == {a, r, b} and obs.lost == []
    assert [e.rule.comment for e in decisions(obs.events[r]) if e.chain == "PREROUTING"] == ["default/web cluster IP"]
    assert obs.nat(r).dnat and obs.nat(r).translated_dst == (B_IP, 8080)
    assert obs.nat(a) is None  # no conntrack user in the source namespace
    assert [(p.ns, p.info.packet.dst) for p in obs.packets] == [(r, VIP), (b, B_IP)]
    assert len(rdpcap(str(tmp_path / "obs.pcap"))) == 2
    for ns in (a, r, b):
        assert DEFAULT_TABLE not in _tables(kernel, ns)
