"""SCTP packet building and parsing, checked against the RFC test vectors and scapy's independent codec."""

from __future__ import annotations

import struct

import pytest
from scapy.layers import sctp as scapy_sctp

from netsim.workload import sctp

# RFC 3720 appendix B.4 (the CRC32c SCTP uses, RFC 9260 appendix A): input -> CRC bytes as transmitted.
ISCSI_READ_PDU = bytes.fromhex(
    "01c00000000000000000000000000000" "14000000000004000000001400000018" "28000000000000000200000000000000")
RFC3720_VECTORS = [
    (b"\x00" * 32, bytes.fromhex("aa36918a")),
    (b"\xff" * 32, bytes.fromhex("43aba862")),
    (bytes(range(32)), bytes.fromhex("4e79dd46")),
    (bytes(range(31, -1, -1)), bytes.fromhex("5cdb3f11")),
    (ISCSI_READ_PDU, bytes.fromhex("563a96d9")),
]


@pytest.mark.parametrize(("data", "wire"), RFC3720_VECTORS)
def test_crc32c_matches_rfc3720_vectors(data, wire):
    assert struct.pack("<I", sctp.crc32c(data)) == wire


def test_crc32c_check_value_and_chaining():
    assert sctp.crc32c(b"123456789") == 0xE3069283  # the catalogued CRC-32C check value
    assert sctp.crc32c(b"6789", sctp.crc32c(b"12345")) == 0xE3069283
    assert sctp.crc32c(b"") == 0


def test_init_is_valid_sctp_by_scapy():
    pkt = sctp.build_init(40000, 7777, 0x11223344, 99)
    parsed = scapy_sctp.SCTP(pkt)
    assert (parsed.sport, parsed.dport, parsed.tag) == (40000, 7777, 0)
    init = parsed[scapy_sctp.SCTPChunkInit]
    assert (init.init_tag, init.init_tsn, init.len) == (0x11223344, 99, 20)
    assert init.a_rwnd >= 1500 and init.n_out_streams > 0 and init.n_in_streams > 0
    rebuilt = scapy_sctp.SCTP(pkt)
    rebuilt.chksum = None  # scapy recomputes it
    assert bytes(rebuilt) == pkt


def test_init_ack_answers_the_init_with_a_cookie():
    init = sctp.parse(sctp.build_init(40000, 7777, 0xCAFEBABE, 1))
    cookie = b'{"pod": "y/b"}'  # 14 bytes: the parameter needs padding
    pkt = sctp.build_init_ack(init, 0x01020304, 7, cookie)
    assert len(pkt) % 4 == 0
    parsed = scapy_sctp.SCTP(pkt)
    assert (parsed.sport, parsed.dport, parsed.tag) == (7777, 40000, 0xCAFEBABE)
    ack = parsed[scapy_sctp.SCTPChunkInitAck]
    assert ack.init_tag == 0x01020304
    assert parsed[scapy_sctp.SCTPChunkParamStateCookie].cookie == cookie
    rebuilt = scapy_sctp.SCTP(pkt)
    rebuilt.chksum = None
    assert bytes(rebuilt) == pkt
    ours = sctp.parse(pkt)
    assert ours.checksum_ok and ours.first_type == sctp.CHUNK_INIT_ACK
    assert ours.init is not None and ours.init.state_cookie == cookie


def test_abort_for_an_unserved_port_carries_the_initiate_tag_without_t_bit():
    init = sctp.parse(sctp.build_init(40001, 9, 0xABCDEF01, 1))
    pkt = sctp.parse(sctp.build_abort(init))
    assert (pkt.src_port, pkt.dst_port, pkt.vtag) == (9, 40001, 0xABCDEF01)
    assert pkt.checksum_ok and pkt.first_type == sctp.CHUNK_ABORT
    assert pkt.chunks[0].flags & sctp.ABORT_T_BIT == 0
    assert isinstance(scapy_sctp.SCTP(sctp.build_abort(init)).payload, scapy_sctp.SCTPChunkAbort)


def test_scapy_built_init_parses_and_a_flipped_bit_fails_the_checksum():
    raw = bytes(scapy_sctp.SCTP(sport=1234, dport=80) / scapy_sctp.SCTPChunkInit(init_tag=5, init_tsn=6))
    pkt = sctp.parse(raw)
    assert pkt.checksum_ok and pkt.init is not None and pkt.init.initiate_tag == 5
    broken = raw[:-1] + bytes([raw[-1] ^ 1])
    assert not sctp.parse(broken).checksum_ok


def test_init_stream_counts_are_negotiated_down():
    init = sctp.parse(sctp.build_init(1, 2, 3, 4, streams=2))
    ack = sctp.parse(sctp.build_init_ack(init, 9, 9, b"c")).init
    assert ack is not None and (ack.outbound_streams, ack.inbound_streams) == (2, 2)


@pytest.mark.parametrize("bad", [b"", b"\0" * 11, sctp.build_init(1, 2, 3, 4)[:-3]])
def test_malformed_packets_raise(bad):
    with pytest.raises(sctp.SctpParseError):
        sctp.parse(bad)


def test_zero_initiate_tag_is_refused():
    with pytest.raises(ValueError):
        sctp.build_init(1, 2, 0, 4)
    with pytest.raises(ValueError):
        sctp.build_abort(sctp.parse(sctp.build_abort(sctp.parse(sctp.build_init(1, 2, 3, 4)))))


def test_parse_ipv4_strips_the_header_and_trailing_padding():
    payload = sctp.build_init(1, 2, 3, 4)
    header = bytes([0x45, 0, 0, 20 + len(payload)]) + b"\0" * 5 + bytes([132]) + b"\0\0" + bytes(
        [10, 0, 0, 1, 10, 0, 0, 2])
    dgram = sctp.parse_ipv4(header + payload + b"\0\0")
    assert (dgram.src, dgram.dst, dgram.protocol, dgram.payload) == ("10.0.0.1", "10.0.0.2", 132, payload)
    with pytest.raises(sctp.SctpParseError):
        sctp.parse_ipv4(b"\x60" + b"\0" * 40)
