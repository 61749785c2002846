"""The responder's wire format without sockets: flags, EDNS0, truncation, malformed queries, snapshot swaps."""

from __future__ import annotations

import struct

import pytest
from dns_fixtures import cluster_snapshot, eps, svc
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from netsim.dns.records import Snapshot
from netsim.dns.server import DnsServer, SnapshotHolder
from netsim.kernel.fake import FakeKernel

D = "default.svc.cluster.local."


@pytest.fixture
def server():
    holder = SnapshotHolder(cluster_snapshot())
    srv = DnsServer(FakeKernel(), holder, "cluster.local")
    srv.holder = holder
    yield srv
    srv.stop()


def ask(srv: DnsServer, name: str, qtype: str = "A", *, udp: bool = True, edns: int | None = None) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    if edns:
        q.add_ar(EDNS0(udp_len=edns))
    out = srv.handle(q.pack(), udp=udp)
    assert out is not None
    reply = DNSRecord.parse(out)
    assert reply.header.id == q.header.id and reply.header.qr == 1
    return reply


def test_answer_flags_and_records(server):
    r = ask(server, f"web.{D}")
    assert r.header.rcode == RCODE.NOERROR and r.header.aa == 1 and r.header.ra == 0 and r.header.rd == 1
    assert [(str(x.rname), x.ttl, str(x.rdata)) for x in r.rr] == [(f"web.{D}", 5, "10.96.0.20")]
    assert str(r.q.qname) == f"web.{D}"


def test_nxdomain_carries_the_soa(server):
    r = ask(server, f"nope.{D}")
    assert r.header.rcode == RCODE.NXDOMAIN and r.rr == []
    (soa,) = r.auth
    assert soa.rtype == QTYPE.SOA and str(soa.rname) == "cluster.local."
    assert str(soa.rdata.mname) == "ns.dns.cluster.local." and soa.rdata.times == (1234, 7200, 1800, 86400, 5)


def test_srv_with_additional_addresses(server):
    r = ask(server, f"_pg._tcp.db.{D}", "SRV")
    assert sorted((x.rdata.port, x.rdata.weight, str(x.rdata.target)) for x in r.rr) == [
        (5432, 50, f"db-0.db.{D}"), (5432, 50, f"db-1.db.{D}")]
    assert sorted(str(x.rdata) for x in r.ar) == ["10.244.1.10", "10.244.2.11"]


def test_ptr_and_cname_and_txt_encode(server):
    assert str(ask(server, "20.0.96.10.in-addr.arpa", "PTR").rr[0].rdata) == f"web.{D}"
    assert str(ask(server, f"ext.{D}", "CNAME").rr[0].rdata) == "example.com."
    assert str(ask(server, "dns-version.cluster.local", "TXT").rr[0].rdata) == '"1.1.0"'


def test_refused_outside_the_zone(server):
    r = ask(server, "example.com")
    assert r.header.rcode == RCODE.REFUSED and r.header.aa == 0


def test_unknown_qtype_is_nodata(server):
    r = ask(server, f"web.{D}", "HTTPS")
    assert r.header.rcode == RCODE.NOERROR and r.rr == [] and len(r.auth) == 1


def _big_snapshot(n: int) -> Snapshot:
    return Snapshot((svc("big", clusterIP="None", ports=[{"name": "p", "port": 1}]),),
                    (eps("big-1", "big", [{"addresses": [f"10.1.{i // 250}.{i % 250 + 1}"]} for i in range(n)],
                         [{"name": "p", "port": 1}]),))


def test_udp_truncates_to_512_and_tcp_does_not(server):
    server.holder.set(_big_snapshot(60))
    udp = ask(server, f"big.{D}")
    assert udp.header.tc == 1 and len(udp.pack()) <= 512 and 0 < len(udp.rr) < 60
    tcp = ask(server, f"big.{D}", udp=False)
    assert tcp.header.tc == 0 and len(tcp.rr) == 60


def test_edns0_buffer_size_is_honoured_and_echoed(server):
    server.holder.set(_big_snapshot(60))
    r = ask(server, f"big.{D}", edns=4096)
    assert r.header.tc == 0 and len(r.rr) == 60
    assert [x.rtype for x in r.ar] == [QTYPE.OPT]


def test_snapshot_swap_is_picked_up(server):
    assert ask(server, f"web.{D}").header.rcode == RCODE.NOERROR
    first = server.resolver()
    assert server.resolver() is first  # same snapshot object: no rebuild
    server.holder.set(Snapshot())
    assert ask(server, f"web.{D}").header.rcode == RCODE.NXDOMAIN
    assert server.resolver() is not first


def test_garbage_gets_formerr_or_nothing(server):
    assert server.handle(b"\x00", udp=True) is None
    junk = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x07broken"
    r = DNSRecord.parse(server.handle(junk, udp=True))
    assert r.header.id == 0xBEEF and r.header.rcode == RCODE.FORMERR


def test_responses_are_never_answered_and_other_opcodes_are_notimp(server):
    q = DNSRecord.question(f"web.{D}")
    q.header.qr = 1
    assert server.handle(q.pack(), udp=True) is None
    q = DNSRecord.question(f"web.{D}")
    q.header.opcode = 4  # NOTIFY
    assert DNSRecord.parse(server.handle(q.pack(), udp=True)).header.rcode == RCODE.NOTIMP


def test_a_crash_in_the_resolver_is_one_servfail(server, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("bug")
    monkeypatch.setattr(type(server.resolver()), "answer", boom)
    assert ask(server, f"web.{D}").header.rcode == RCODE.SERVFAIL


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError):
        DnsServer(FakeKernel(), SnapshotHolder(), pods="nope")


def test_truncation_keeps_as_many_answers_as_fit(server):
    server.holder.set(_big_snapshot(1000))
    udp = ask(server, f"big.{D}")
    assert udp.header.tc == 1 and len(udp.pack()) <= 512
    one_more = DNSRecord.parse(udp.pack())
    one_more.rr = ask(server, f"big.{D}", udp=False).rr[: len(udp.rr) + 1]
    assert len(one_more.pack()) > 512


def _raw_query(labels: list[bytes], *, counts: tuple[int, int, int, int] = (1, 0, 0, 0), flags: int = 0x0100,
               ident: int = 0x1234) -> bytes:
    name = b"".join(bytes([len(x)]) + x for x in labels) + b"\0"
    return struct.pack("!HHHHHH", ident, flags, *counts) + name + struct.pack("!HH", 1, 1)


def test_a_name_longer_than_255_bytes_is_formerr_not_a_dead_server(server):
    # Five 63-byte labels: 321 bytes on the wire. dnslib parses it but cannot pack it back.
    out = server.handle(_raw_query([b"a" * 63] * 5), udp=True)
    r = DNSRecord.parse(out)
    assert r.header.id == 0x1234 and r.header.rcode == RCODE.FORMERR and r.header.qr == 1
    assert ask(server, f"web.{D}").header.rcode == RCODE.NOERROR
    # 255 bytes exactly is still a name
    ok = server.handle(_raw_query([b"b" * 63] * 3 + [b"c" * 61]), udp=True)
    assert DNSRecord.parse(ok).header.rcode != RCODE.FORMERR


@pytest.mark.parametrize(("counts", "rcode"), [((0, 0, 0, 0), RCODE.FORMERR), ((2, 0, 0, 0), RCODE.FORMERR),
                                               ((1, 2, 0, 0), RCODE.FORMERR), ((1, 0, 2, 0), RCODE.FORMERR),
                                               ((1, 0, 0, 3), RCODE.FORMERR), ((1, 0, 0, 65535), RCODE.FORMERR)])
def test_header_counts_are_judged_before_parsing_as_miekg_dns(server, counts, rcode):
    r = DNSRecord.parse(server.handle(_raw_query([b"web"], counts=counts), udp=True))
    assert r.header.rcode == rcode and r.header.id == 0x1234


def test_a_failure_while_encoding_is_one_servfail(server, monkeypatch):
    import netsim.dns.server as mod

    def boom(*a, **k):
        raise RuntimeError("bug")
    monkeypatch.setattr(mod, "encode", boom)
    r = DNSRecord.parse(server.handle(DNSRecord.question(f"web.{D}").pack(), udp=True))
    assert r.header.rcode == RCODE.SERVFAIL


def test_malformed_garbage_with_qr_set_is_never_answered(server):
    assert server.handle(struct.pack("!HHHHHH", 1, 0x8100, 1, 0, 0, 0) + b"\xff\xff", udp=True) is None


def test_fuzzed_queries_never_raise_and_answers_echo_the_id(server):
    """Seeded mutations of well-formed queries (bit flips, truncation, splices, random tails)."""
    import random
    rng = random.Random(15)
    seeds = [DNSRecord.question(f"web.{D}", t).pack() for t in ("A", "SRV", "PTR", "AAAA", "TXT")]
    seeds.append(_raw_query([b"a" * 63] * 5))
    for _ in range(2000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(4)
            if op == 0 and data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif op == 1:
                del data[rng.randrange(len(data) + 1):]
            elif op == 2:
                data += rng.randbytes(rng.randint(1, 300))
            elif data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        out = server.handle(bytes(data), udp=rng.random() < 0.5)
        if out is not None:
            r = DNSRecord.parse(out)
            assert r.header.qr == 1 and r.header.id == int.from_bytes(data[:2], "big")
    assert ask(server, f"web.{D}").header.rcode == RCODE.NOERROR
