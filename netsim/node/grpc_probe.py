"""The kubelet's grpc probe (pkg/probe/grpc/grpc.go, our own code): `grpc.health.v1.Health/Check` over h2c
with the probe's `service`, success when the answer is SERVING. Failures are worded as upstream's:
`service unhealthy (responded with "NOT_SERVING")`, `timeout: failed to connect service "ip:port" within
1s: ...`, `timeout: health rpc did not complete within 1s`, or the server not implementing the health
protocol. A minimal HTTP/2 client (netsim.workload.h2): preface, SETTINGS, one stream.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from netsim.node.http_probe import USER_AGENT
from netsim.workload import h2


def grpc_check(ip: str, port: int, service: str, timeout: float,
               make_socket: Callable[[], socket.socket] = socket.socket) -> tuple[bool, str]:
    """Run one grpc probe: (success, output). `make_socket` makes the TCP socket in the namespace the
    probe comes from (by default the current thread's); the exchange itself runs in the calling thread."""
    target = f"{ip}:{port}"
    deadline = time.monotonic() + timeout
    sock = make_socket()
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
    except OSError as exc:
        sock.close()
        why = "context deadline exceeded" if isinstance(exc, TimeoutError) else \
            f"connection error: desc = \"transport: Error while dialing: dial tcp {target}: connect: " \
            f"{os.strerror(exc.errno).lower() if exc.errno else exc}\""
        return False, f'timeout: failed to connect service "{target}" within {timeout:g}s: {why}'
    headers = h2.encode([(":method", "POST"), (":scheme", "http"), (":path", h2.HEALTH_CHECK),
                         (":authority", target), ("content-type", "application/grpc"), ("te", "trailers"),
                         ("user-agent", USER_AGENT)])
    request = (h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0) + h2.frame(h2.HEADERS, h2.END_HEADERS, 1, headers)
               + h2.frame(h2.DATA, h2.END_STREAM, 1, h2.grpc_message(h2.health_request(service))))
    decoder = h2.Decoder()
    fields: dict[str, str] = {}
    data = b""
    buf = b""
    try:
        with sock:
            sock.sendall(request)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got, buf = h2.frames(buf + chunk)
                done = False
                for f in got:
                    if f.type == h2.SETTINGS and not f.flags & h2.ACK:
                        sock.sendall(h2.frame(h2.SETTINGS, h2.ACK, 0))
                    elif f.type == h2.PING and not f.flags & h2.ACK:
                        sock.sendall(h2.frame(h2.PING, h2.ACK, 0, f.payload))
                    elif f.stream == 1 and f.type == h2.HEADERS:
                        try:
                            fields.update(decoder.decode(h2.header_block(f)))
                        except h2.HuffmanCoded:
                            pass  # judged by the message below
                        done = bool(f.flags & h2.END_STREAM)
                    elif f.stream == 1 and f.type == h2.DATA:
                        data += f.payload
                        done = bool(f.flags & h2.END_STREAM)
                    elif f.type in (h2.RST_STREAM, h2.GOAWAY):
                        done = True
                if done:
                    break
    except TimeoutError:
        return False, f"timeout: health rpc did not complete within {timeout:g}s"
    except (OSError, h2.H2Error) as exc:
        return False, f"rpc error: code = Unavailable desc = {exc}"
    code = fields.get("grpc-status")
    if code == str(h2.GRPC_UNIMPLEMENTED):
        return False, ("this server does not implement the grpc health protocol (grpc.health.v1.Health): "
                       f"{fields.get('grpc-message', 'unimplemented')}")
    messages = list(h2.grpc_messages(data))
    if code not in (None, str(h2.GRPC_OK)) or not messages:
        return False, f"rpc error: code = {code or 'Unknown'} desc = {fields.get('grpc-message', 'no response')}"
    status = h2.response_status(messages[0])
    if status != 1:
        return False, f'service unhealthy (responded with "{h2.STATUS_NAMES.get(status, str(status))}")'
    return True, ""
