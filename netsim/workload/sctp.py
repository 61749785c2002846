"""Just enough SCTP to answer and send an association's first exchange, over raw sockets.

The kernel here has no SCTP stack, so the workload server answers INIT with INIT-ACK and the prober
sends INIT and reads INIT-ACK (or ABORT) by hand. Packet layout and rules follow RFC 9260:
common header (section 3.1), INIT (3.3.2), INIT ACK with its mandatory State Cookie parameter (3.3.3),
ABORT and its T bit (3.3.7), the out-of-the-blue rule for an INIT nobody listens for (8.4 item 3) and
the CRC32c checksum (appendix A). The checksum is stored least significant byte first, as Linux does
(include/net/sctp/checksum.h: `cpu_to_le32(~crc)`) and as the RFC 3720 test vectors show.

Everything here is pure: bytes in, bytes or dataclasses out.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

IPPROTO_SCTP = 132

CHUNK_INIT = 1
CHUNK_INIT_ACK = 2
CHUNK_ABORT = 6
PARAM_STATE_COOKIE = 7
ABORT_T_BIT = 0x01

DEFAULT_A_RWND = 106496  # what Linux advertises by default; any value >= 1500 is valid
DEFAULT_STREAMS = 10

_COMMON = struct.Struct("!HHII")  # src port, dst port, verification tag, checksum
_CHUNK = struct.Struct("!BBH")  # type, flags, length
_INIT = struct.Struct("!IIHHI")  # initiate tag, a_rwnd, outbound streams, inbound streams, initial TSN
_PARAM = struct.Struct("!HH")


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli polynomial, reflected
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32c (Castagnoli) of `data`, chainable through `crc` like zlib.crc32."""
    c = crc ^ 0xFFFFFFFF
    table = _TABLE
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _with_checksum(packet: bytes) -> bytes:
    """Fill the common header's checksum field (computed with the field zeroed)."""
    zeroed = packet[:8] + b"\0\0\0\0" + packet[12:]
    return packet[:8] + struct.pack("<I", crc32c(zeroed)) + packet[12:]


def checksum_ok(packet: bytes) -> bool:
    if len(packet) < _COMMON.size:
        return False
    (stored,) = struct.unpack_from("<I", packet, 8)
    return stored == crc32c(packet[:8] + b"\0\0\0\0" + packet[12:])


def _chunk(ctype: int, flags: int, value: bytes) -> bytes:
    return _pad4(_CHUNK.pack(ctype, flags, _CHUNK.size + len(value)) + value)


def _param(ptype: int, value: bytes) -> bytes:
    return _pad4(_PARAM.pack(ptype, _PARAM.size + len(value)) + value)


def _packet(src_port: int, dst_port: int, vtag: int, chunks: bytes) -> bytes:
    return _with_checksum(_COMMON.pack(src_port, dst_port, vtag, 0) + chunks)


def build_init(src_port: int, dst_port: int, initiate_tag: int, initial_tsn: int, *,
               a_rwnd: int = DEFAULT_A_RWND, streams: int = DEFAULT_STREAMS) -> bytes:
    """An INIT packet: verification tag 0 (3.3.2), our non-zero initiate tag inside."""
    if not 0 < initiate_tag <= 0xFFFFFFFF:
        raise ValueError("the initiate tag must be non-zero")
    body = _INIT.pack(initiate_tag, a_rwnd, streams, streams, initial_tsn)
    return _packet(src_port, dst_port, 0, _chunk(CHUNK_INIT, 0, body))


def build_init_ack(init: SctpPacket, initiate_tag: int, initial_tsn: int, cookie: bytes, *,
                   a_rwnd: int = DEFAULT_A_RWND) -> bytes:
    """The INIT-ACK answering `init`: ports swapped, the peer's initiate tag as verification tag,
    stream counts no larger than the peer asked for, and the State Cookie carrying `cookie`."""
    req = init.init
    if req is None:
        raise ValueError("not an INIT packet")
    streams = max(1, min(DEFAULT_STREAMS, req.inbound_streams))
    inbound = max(1, min(DEFAULT_STREAMS, req.outbound_streams))
    body = _INIT.pack(initiate_tag, a_rwnd, streams, inbound, initial_tsn) + _param(PARAM_STATE_COOKIE, cookie)
    return _packet(init.dst_port, init.src_port, req.initiate_tag, _chunk(CHUNK_INIT_ACK, 0, body))


def build_abort(init: SctpPacket) -> bytes:
    """ABORT for an INIT to a port nobody serves (8.4 item 3): tag = the INIT's initiate tag, T bit clear."""
    if init.init is None:
        raise ValueError("not an INIT packet")
    return _packet(init.dst_port, init.src_port, init.init.initiate_tag, _chunk(CHUNK_ABORT, 0, b""))


@dataclass(frozen=True)
class Chunk:
    type: int
    flags: int
    value: bytes  # without the 4-byte chunk header and without padding


@dataclass(frozen=True)
class InitFields:
    """The fixed part of an INIT or INIT-ACK chunk plus its parameters."""

    initiate_tag: int
    a_rwnd: int
    outbound_streams: int
    inbound_streams: int
    initial_tsn: int
    params: dict[int, bytes] = field(default_factory=dict)

    @property
    def state_cookie(self) -> bytes | None:
        return self.params.get(PARAM_STATE_COOKIE)


@dataclass(frozen=True)
class SctpPacket:
    src_port: int
    dst_port: int
    vtag: int
    checksum_ok: bool
    chunks: tuple[Chunk, ...]

    @property
    def first_type(self) -> int | None:
        return self.chunks[0].type if self.chunks else None

    @property
    def init(self) -> InitFields | None:
        """The INIT or INIT-ACK fields when the first chunk is one of them (INIT must be alone, 3.3.2)."""
        if not self.chunks or self.chunks[0].type not in (CHUNK_INIT, CHUNK_INIT_ACK):
            return None
        return _parse_init(self.chunks[0].value)


class SctpParseError(ValueError):
    pass


def _parse_init(value: bytes) -> InitFields | None:
    if len(value) < _INIT.size:
        return None
    tag, rwnd, out_s, in_s, tsn = _INIT.unpack_from(value)
    params: dict[int, bytes] = {}
    off = _INIT.size
    while off + _PARAM.size <= len(value):
        ptype, plen = _PARAM.unpack_from(value, off)
        if plen < _PARAM.size or off + plen > len(value):
            break
        params.setdefault(ptype, value[off + _PARAM.size:off + plen])
        off += plen + (-plen % 4)
    return InitFields(tag, rwnd, out_s, in_s, tsn, params)


def parse(packet: bytes) -> SctpPacket:
    """Parse an SCTP packet (no IP header). Raises SctpParseError on a malformed one."""
    if len(packet) < _COMMON.size:
        raise SctpParseError("shorter than the SCTP common header")
    sport, dport, vtag, _ = _COMMON.unpack_from(packet)
    chunks = []
    off = _COMMON.size
    while off + _CHUNK.size <= len(packet):
        ctype, flags, clen = _CHUNK.unpack_from(packet, off)
        if clen < _CHUNK.size or off + clen > len(packet):
            raise SctpParseError(f"chunk at offset {off} has bad length {clen}")
        chunks.append(Chunk(ctype, flags, packet[off + _CHUNK.size:off + clen]))
        off += clen + (-clen % 4)
    return SctpPacket(sport, dport, vtag, checksum_ok(packet), tuple(chunks))


@dataclass(frozen=True)
class IpDatagram:
    src: str
    dst: str
    protocol: int
    payload: bytes


def parse_ipv4(data: bytes) -> IpDatagram:
    """Split what an IPv4 raw socket hands us into addresses and payload."""
    if len(data) < 20 or data[0] >> 4 != 4:
        raise SctpParseError("not an IPv4 packet")
    ihl = (data[0] & 0x0F) * 4
    (total,) = struct.unpack_from("!H", data, 2)
    end = min(len(data), total) if total >= ihl else len(data)
    return IpDatagram(str(ipaddress.IPv4Address(data[12:16])), str(ipaddress.IPv4Address(data[16:20])),
                      data[9], data[ihl:end])
