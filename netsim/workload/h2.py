"""Just enough HTTP/2 (RFC 9113) and HPACK (RFC 7541) for gRPC's health check over h2c, both ends.

The workload server answers `grpc.health.v1.Health/Check` for the containers it plays, and the kubelet's
grpc prober (netsim.node.grpc_probe) asks it, as pkg/probe/grpc does with grpc-go. Frames are the 9-byte
header and payload; HPACK decodes indexed and literal fields with the static and dynamic tables, and
encodes literals without indexing (always valid). Huffman-coded strings (which grpc-go sends) are not
decoded: `HuffmanCoded` is raised and callers fall back (the server treats the request as a health check,
the prober judges the response by its message). gRPC messages are a 5-byte prefix (compressed flag, length)
and the protobuf bytes; the health messages are one field each.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# grpc.health.v1.HealthCheckResponse.ServingStatus
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
GRPC_OK, GRPC_NOT_FOUND, GRPC_UNIMPLEMENTED = 0, 5, 12

STATIC_TABLE: tuple[tuple[str, str], ...] = (
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
    (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
    (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
    ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""),
    ("cache-control", ""), ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""),
    ("content-length", ""), ("content-location", ""), ("content-range", ""), ("content-type", ""),
    ("cookie", ""), ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""),
    ("proxy-authenticate", ""), ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""),
    ("retry-after", ""), ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""),
    ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)


class H2Error(Exception):
    """A peer broke the protocol (or said something this minimal implementation does not take)."""


class HuffmanCoded(H2Error):
    """A header string is Huffman-coded (RFC 7541 5.2), which this decoder does not expand."""


def frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream & 0x7FFFFFFF) + payload


@dataclass
class Frame:
    type: int
    flags: int
    stream: int
    payload: bytes


def frames(buf: bytes) -> tuple[list[Frame], bytes]:
    """The complete frames at the start of `buf`, and the rest."""
    out = []
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if length > 1 << 20:
            raise H2Error(f"frame of {length} bytes")
        if len(buf) < 9 + length:
            break
        out.append(Frame(buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + length]))
        buf = buf[9 + length:]
    return out, buf


def header_block(f: Frame) -> bytes:
    """A HEADERS frame's field block, without padding and priority."""
    data = f.payload
    pad = 0
    if f.flags & PADDED:
        pad, data = data[0], data[1:]
    if f.type == HEADERS and f.flags & PRIORITY_FLAG:
        data = data[5:]
    return data[:len(data) - pad] if pad else data


# -- HPACK ------------------------------------------------------------------------------------------
def _int(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
    mask = (1 << prefix) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise H2Error("truncated integer")
        b = data[pos]
        pos += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _enc_int(value: int, prefix: int, first: int) -> bytes:
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes([first | value])
    out = [first | mask]
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes, pos: int) -> tuple[str, int]:
    huffman = bool(data[pos] & 0x80)
    length, pos = _int(data, pos, 7)
    if pos + length > len(data):
        raise H2Error("truncated string")
    if huffman:
        raise HuffmanCoded("Huffman-coded header string")
    return data[pos:pos + length].decode("latin-1"), pos + length


@dataclass
class Decoder:
    """An HPACK decoder (one per connection and direction: the dynamic table is shared by its blocks)."""

    max_size: int = 4096
    table: list[tuple[str, str]] = field(default_factory=list)  # newest first

    def _get(self, index: int) -> tuple[str, str]:
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        i = index - len(STATIC_TABLE) - 1
        if 0 <= i < len(self.table):
            return self.table[i]
        raise H2Error(f"no header table entry {index}")

    def _add(self, name: str, value: str) -> None:
        self.table.insert(0, (name, value))
        while sum(len(n) + len(v) + 32 for n, v in self.table) > self.max_size:
            self.table.pop()

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        out, pos = [], 0
        while pos < len(block):
            b = block[pos]
            if b & 0x80:  # indexed field
                index, pos = _int(block, pos, 7)
                out.append(self._get(index))
                continue
            if b & 0xE0 == 0x20:  # dynamic table size update
                self.max_size, pos = _int(block, pos, 5)
                continue
            incremental = b & 0xC0 == 0x40
            index, pos = _int(block, pos, 6 if incremental else 4)
            if index:
                name = self._get(index)[0]
            else:
                name, pos = _string(block, pos)
            value, pos = _string(block, pos)
            if incremental:
                self._add(name, value)
            out.append((name, value))
        return out


def encode(fields: list[tuple[str, str]]) -> bytes:
    """Literal fields without indexing, names by static index where there is one, no Huffman coding."""
    names = {}
    for i, (n, _) in enumerate(STATIC_TABLE, 1):
        names.setdefault(n, i)
    out = b""
    for name, value in fields:
        index = names.get(name, 0)
        out += _enc_int(index, 4, 0x00)
        if not index:
            out += _enc_int(len(name), 7, 0x00) + name.encode("latin-1")
        out += _enc_int(len(value), 7, 0x00) + value.encode("latin-1")
    return out


# -- gRPC messages -------------------------------------------------------------------------------------
def grpc_message(payload: bytes) -> bytes:
    return b"\0" + struct.pack(">I", len(payload)) + payload


def grpc_messages(data: bytes) -> Iterator[bytes]:
    while len(data) >= 5:
        length = int.from_bytes(data[1:5], "big")
        yield data[5:5 + length]
        data = data[5 + length:]


def health_request(service: str) -> bytes:
    """HealthCheckRequest{service = 1}."""
    raw = service.encode()
    return (b"\x0a" + _varint(len(raw)) + raw) if raw else b""


def health_response(status: int) -> bytes:
    """HealthCheckResponse{status = 1}."""
    return b"\x08" + _varint(status)


def response_status(message: bytes) -> int:
    """The ServingStatus of a HealthCheckResponse (0, UNKNOWN, when absent)."""
    pos = 0
    while pos < len(message):
        key, pos = _read_varint(message, pos)
        if key == 0x08:
            value, pos = _read_varint(message, pos)
            return value
        wire = key & 7
        if wire == 0:
            _, pos = _read_varint(message, pos)
        elif wire == 2:
            n, pos = _read_varint(message, pos)
            pos += n
        else:
            break
    return 0


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos
    raise H2Error("truncated varint")


# -- the server side: one h2c connection of the workload server --------------------------------------
@dataclass
class HealthServer:
    """The workload server's side of an h2c connection: `feed(bytes)` returns what to send back. Every
    stream is answered as gRPC: the health check with SERVING (any service: the image's own names are not
    known), other methods with UNIMPLEMENTED (a request whose path cannot be read is taken as a health
    check)."""

    buf: bytes = b""
    started: bool = False
    decoder: Decoder = field(default_factory=Decoder)
    paths: dict[int, str] = field(default_factory=dict)
    blocks: dict[int, bytes] = field(default_factory=dict)  # HEADERS awaiting CONTINUATION
    closed: bool = False

    def feed(self, data: bytes) -> bytes:
        """Take the client's bytes, return the answer; H2Error for anything malformed (the caller closes)."""
        try:
            return self._feed(data)
        except (IndexError, ValueError, UnicodeError) as exc:  # truncated fields, bad lengths
            raise H2Error(f"malformed HTTP/2 input: {exc}") from None

    def _feed(self, data: bytes) -> bytes:
        self.buf += data
        out = b""
        if not self.started:
            if len(self.buf) < len(PREFACE):
                return out
            if not self.buf.startswith(PREFACE):
                raise H2Error("not the HTTP/2 client preface")
            self.buf = self.buf[len(PREFACE):]
            self.started = True
            out += frame(SETTINGS, 0, 0)
        got, self.buf = frames(self.buf)
        for f in got:
            if f.type == SETTINGS and not f.flags & ACK:
                out += frame(SETTINGS, ACK, 0)
            elif f.type == PING and not f.flags & ACK:
                out += frame(PING, ACK, 0, f.payload)
            elif f.type == GOAWAY:
                self.closed = True
            elif f.type in (HEADERS, CONTINUATION):
                block = self.blocks.pop(f.stream, b"") + (header_block(f) if f.type == HEADERS else f.payload)
                if not f.flags & END_HEADERS:
                    self.blocks[f.stream] = block
                    continue
                try:
                    path = dict(self.decoder.decode(block)).get(":path", HEALTH_CHECK)
                except HuffmanCoded:
                    path = HEALTH_CHECK
                self.paths[f.stream] = path
                if f.flags & END_STREAM:
                    out += self._answer(f.stream)
            elif f.type == DATA and f.flags & END_STREAM and f.stream in self.paths:
                out += self._answer(f.stream)
        return out

    def _answer(self, stream: int) -> bytes:
        path = self.paths.pop(stream, HEALTH_CHECK)
        head = [(":status", "200"), ("content-type", "application/grpc")]
        if path != HEALTH_CHECK:
            return frame(HEADERS, END_HEADERS | END_STREAM, stream, encode(
                head + [("grpc-status", str(GRPC_UNIMPLEMENTED)), ("grpc-message", f"unknown method {path}")]))
        return (frame(HEADERS, END_HEADERS, stream, encode(head))
                + frame(DATA, 0, stream, grpc_message(health_response(1)))
                + frame(HEADERS, END_HEADERS | END_STREAM, stream, encode([("grpc-status", str(GRPC_OK))])))
