"""What the workload server says to HTTP clients: sniffing the first bytes, HTTP/1.x requests and answers.

Images are not run, so the workload server plays every container that has no `command`; real images
behind a Service mostly speak HTTP, and the kubelet's httpGet probes are GETs. A TCP connection is
therefore sniffed: the first bytes of an HTTP/1.x request line (a method and a space) make it an HTTP
connection, the HTTP/2 client preface (RFC 9113 3.4, `PRI * HTTP/2.0...`) an h2c one (gRPC); anything
else, or nothing within the server's sniffing window, gets the identity line as before. Pure functions:
the server owns the sockets.

HTTP/1.x as RFC 9112 says it: one answer per request, in order (pipelining), a body skipped by its
Content-Length, persistent connections by default in HTTP/1.1 and closed after `Connection: close`
(or in HTTP/1.0 unless `Connection: keep-alive`). Every request is answered 200 with a small body: the
pod's hostname for `/hostname` (agnhost netexec's endpoint), the identity JSON line otherwise, so a
`curl` through a Service says which pod answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formatdate

METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_HEAD = 64 * 1024  # request line and headers; larger is answered 431 and closed
MAX_BODY = 1024 * 1024  # a request body is read and dropped; larger is answered 413 and closed
SERVER = "netsim-workload"

HTTP1, H2, OTHER, UNDECIDED = "http", "h2", "other", "undecided"


def classify(data: bytes) -> str:
    """What a connection's first bytes say it speaks: HTTP1, H2, OTHER, or UNDECIDED (too few bytes yet)."""
    if not data:
        return UNDECIDED
    if data.startswith(H2_PREFACE[:len(data)]) or data.startswith(H2_PREFACE):
        return H2 if len(data) >= len(H2_PREFACE) else UNDECIDED
    for m in METHODS:
        token = m + b" "
        if data.startswith(token):
            return HTTP1
        if token.startswith(data):
            return UNDECIDED
    return OTHER


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; repeated ones joined by ", "

    @property
    def keep_alive(self) -> bool:
        """RFC 9112 9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive`."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if "close" in tokens:
            return False
        return self.version == "HTTP/1.1" or "keep-alive" in tokens


class BadRequest(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def parse_requests(buf: bytes) -> tuple[list[Request], bytes]:
    """The complete requests at the start of `buf` and what is left (an incomplete one). Raises BadRequest
    for what no server would answer 200 (a malformed request line, a head over MAX_HEAD, a chunked body,
    which the prober and curl's GETs never send)."""
    out: list[Request] = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise BadRequest(431, "Request Header Fields Too Large")
            return out, buf
        head, rest = buf[:end].decode("latin-1"), buf[end + 4:]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(400, "Bad Request")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise BadRequest(400, "Bad Request")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise BadRequest(501, "Not Implemented")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest(400, "Bad Request") from None
        if length < 0:
            raise BadRequest(400, "Bad Request")
        if length > MAX_BODY:
            raise BadRequest(413, "Content Too Large")
        if len(rest) < length:
            return out, buf  # the body is still coming
        out.append(Request(parts[0], parts[1], parts[2], headers))
        buf = rest[length:]


def body_for(req: Request, hostname: str, identity_line: bytes) -> tuple[bytes, str]:
    """(body, content type) of the answer to `req`."""
    path = req.target.split("?", 1)[0]
    if path == "/hostname":
        return hostname.encode(), "text/plain; charset=utf-8"
    return identity_line, "application/json"


def response(status: int, reason: str, body: bytes, content_type: str, *, close: bool, head: bool = False) -> bytes:
    """An HTTP/1.1 response; `head`: the headers of a HEAD answer (Content-Length of the body not sent)."""
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
             f"Date: {formatdate(usegmt=True)}", f"Server: {SERVER}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)
