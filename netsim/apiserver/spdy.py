"""SPDY/3.1 as Kubernetes' streaming endpoints speak it: the server half of a session.

kubectl and client-go carry `exec`, `attach` and `port-forward` over SPDY/3.1
(k8s.io/apimachinery pkg/util/httpstream/spdy, built on github.com/moby/spdystream): after an HTTP
`Upgrade: SPDY/3.1` (or, since kubectl 1.30, inside WebSocket binary messages, subprotocol
`SPDY/3.1+portforward.k8s.io`), the client opens streams with SYN_STREAM frames whose headers say what
each stream is for (`streamtype`, `port`, `requestid`); the server answers each with a SYN_REPLY and the
two sides exchange DATA frames, a FIN flag half-closing a stream.

What is implemented is what spdystream uses (draft-mbelshe-httpbis-spdy-00, section 2): the frame
layouts, header blocks compressed by one zlib stream per direction primed with the protocol's
dictionary (spdy/dictionary.go; sync-flushed per block, as spdy/write.go does), PING answered by
echoing it, GOAWAY and RST_STREAM ending a session or a stream. spdystream does no flow control (its
connection.go ignores WINDOW_UPDATE), so neither does this: SETTINGS and WINDOW_UPDATE are read and
dropped. Header names arrive lower-cased (spdy/read.go lower-cases them).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import struct
import threading
import zlib
from collections.abc import Callable, Mapping
from typing import Protocol

log = logging.getLogger("netsim.apiserver.spdy")

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5
MAX_DATA = 32 * 1024  # bytes per DATA frame we send (spdystream reads any size up to 2^24)

# The SPDY/3 header compression dictionary (SPDY/3 draft, section 2.6.10.1): length-prefixed header
# names and values, then a run of status codes, dates and media types.
_DICT_WORDS = [
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location",
    "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
    "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
    "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
    "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
    "public", "set-cookie", "keep-alive", "origin",
]
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack("!I", len(w)) + w.encode() for w in _DICT_WORDS) + _DICT_TAIL.encode()


class Transport(Protocol):
    """A byte stream: the upgraded TLS socket, or the binary messages of a WebSocket."""

    def recv(self) -> bytes:
        """Some bytes; b"" at the end."""
        ...

    def send(self, data: bytes) -> None: ...


class SocketTransport:
    def __init__(self, sock: object):
        self.sock = sock

    def recv(self) -> bytes:
        try:
            return self.sock.recv(65536)  # type: ignore[attr-defined, no-any-return]
        except OSError:
            return b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)  # type: ignore[attr-defined]


def encode_headers(headers: Mapping[str, str]) -> bytes:
    out = [struct.pack("!I", len(headers))]
    for k, v in headers.items():
        kb, vb = k.lower().encode(), v.encode()
        out += [struct.pack("!I", len(kb)), kb, struct.pack("!I", len(vb)), vb]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    """name -> value (several values of one name are NUL-separated on the wire: the first is kept)."""
    (n,), pos, out = struct.unpack_from("!I", block), 4, {}
    for _ in range(n):
        (ln,) = struct.unpack_from("!I", block, pos)
        name = block[pos + 4: pos + 4 + ln].decode().lower()
        pos += 4 + ln
        (lv,) = struct.unpack_from("!I", block, pos)
        value = block[pos + 4: pos + 4 + lv].decode()
        pos += 4 + lv
        out.setdefault(name, value.split("\0")[0])
    return out


def control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    return struct.pack("!II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


class Stream:
    """One SPDY stream the client opened: its headers, what it sent (read until b""), and writes back."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]):
        self.session, self.id, self.headers = session, stream_id, headers
        self._in: queue.Queue[bytes] = queue.Queue()
        self._remote_done = False
        self._local_done = False

    def _feed(self, data: bytes) -> None:
        if not self._remote_done:
            self._in.put(data)

    def _end(self) -> None:
        if not self._remote_done:
            self._remote_done = True
            self._in.put(b"")

    def read(self, timeout: float | None = None) -> bytes:
        """The next bytes the client sent; b"" once it half-closed (or the session ended)."""
        try:
            data = self._in.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if data == b"":
            self._in.put(b"")  # stays at the end for later readers
        return data

    def write(self, data: bytes) -> None:
        for i in range(0, len(data), MAX_DATA):
            self.session.send(data_frame(self.id, data[i:i + MAX_DATA]))

    def close(self) -> None:
        """Half-close our side (an empty DATA frame with FIN, as spdystream's Stream.Close sends)."""
        if not self._local_done:
            self._local_done = True
            with contextlib.suppress(OSError):
                self.session.send(data_frame(self.id, b"", fin=True))

    def reset(self) -> None:
        self._local_done = True
        with contextlib.suppress(OSError):
            self.session.send(control(RST_STREAM, 0, struct.pack("!II", self.id, RST_CANCEL)))


class Session:
    """The server end of one SPDY/3.1 connection. `run(on_stream)` reads frames until the client leaves;
    `on_stream` is called (in the reading thread: it must not block) for each new stream, after its
    SYN_REPLY went out."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self._wlock = threading.Lock()
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(15, zdict=DICTIONARY)
        self.streams: dict[int, Stream] = {}
        self.closed = threading.Event()

    def send(self, data: bytes) -> None:
        with self._wlock:
            self.transport.send(data)

    def _headers_payload(self, headers: Mapping[str, str]) -> bytes:
        return self._deflate.compress(encode_headers(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def reply(self, stream_id: int, headers: Mapping[str, str] | None = None, fin: bool = False) -> None:
        with self._wlock:  # the compressor's state and the frame order go together
            block = self._headers_payload(headers or {})
            self.transport.send(control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack("!I", stream_id) + block))

    def run(self, on_stream: Callable[[Stream], None]) -> None:
        buf = b""
        try:
            while True:
                while len(buf) < 8 or len(buf) < 8 + (int.from_bytes(buf[5:8], "big")):
                    chunk = self.transport.recv()
                    if not chunk:
                        return
                    buf += chunk
                length = int.from_bytes(buf[5:8], "big")
                head, payload, buf = buf[:8], buf[8:8 + length], buf[8 + length:]
                self._frame(head, payload, on_stream)
        except (OSError, EOFError, zlib.error, struct.error, UnicodeDecodeError) as e:
            log.debug("SPDY session ended: %s", e)
        finally:
            self.closed.set()
            for st in list(self.streams.values()):
                st._end()

    def _frame(self, head: bytes, payload: bytes, on_stream: Callable[[Stream], None]) -> None:
        flags = head[4]
        if not head[0] & 0x80:  # a DATA frame
            st = self.streams.get(int.from_bytes(head[:4], "big") & 0x7FFFFFFF)
            if st is not None:
                if payload:
                    st._feed(payload)
                if flags & FLAG_FIN:
                    st._end()
            return
        kind = int.from_bytes(head[2:4], "big")
        if kind == SYN_STREAM:
            sid = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            headers = decode_headers(self._inflate.decompress(payload[10:]))
            st = Stream(self, sid, headers)
            self.streams[sid] = st
            self.reply(sid)
            if flags & FLAG_FIN:
                st._end()
            on_stream(st)
        elif kind == HEADERS:
            self._inflate.decompress(payload[4:])  # keeps the shared zlib stream in step
        elif kind == SYN_REPLY:
            self._inflate.decompress(payload[4:])
        elif kind == RST_STREAM:
            st = self.streams.get(int.from_bytes(payload[:4], "big") & 0x7FFFFFFF)
            if st is not None:
                st._local_done = True
                st._end()
        elif kind == PING:
            self.send(control(PING, 0, payload))
        elif kind == GOAWAY:
            raise EOFError("GOAWAY")
        # SETTINGS, WINDOW_UPDATE: nothing to do (no flow control, as spdystream)

    def goaway(self) -> None:
        with contextlib.suppress(OSError):
            self.send(control(GOAWAY, 0, struct.pack("!II", 0, 0)))


def wait_streams(streams: dict[str, Stream], wanted: set[str], cond: threading.Condition, timeout: float) -> bool:
    """Wait until every stream type in `wanted` has arrived (the remotecommand server's waitStreamReply)."""
    with cond:
        return cond.wait_for(lambda: wanted <= set(streams), timeout=timeout)
