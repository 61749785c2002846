"""`pods/exec` over WebSocket with the Kubernetes channel protocols (v5.channel.k8s.io, v4.channel.k8s.io).

What kubectl >= 1.31 speaks by default (k8s.io/apimachinery pkg/util/remotecommand/constants.go,
k8s.io/client-go tools/remotecommand/websocket.go; the server side in k8s.io/apiserver
pkg/util/proxy/streamtranslator.go and kubelet's cri streaming): an RFC 6455 upgrade of
`GET .../pods/NAME/exec?command=...&stdin=&stdout=&stderr=&tty=&container=`, then binary messages whose
first byte is the channel: 0 stdin (client to server), 1 stdout, 2 stderr, 3 the exit Status (JSON:
`Success`, or `Failure` with reason `NonZeroExitCode` and a cause `ExitCode` holding the code), 4 terminal
resize; v5 adds 255, the client's "I closed this stream" (255, 0 = stdin EOF).

The command runs as `netsim exec POD -- CMD` runs it: in the pod's network namespace with its
/etc/netns files (`ip netns exec`), as root. A TTY is not emulated: `tty=true` runs without one (not
yet). SPDY (the older protocol) is served by streaming.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from netsim import naming
from netsim.apiserver import errors

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def choose_protocol(offered: str) -> str | None:
    names = [p.strip() for p in offered.split(",") if p.strip()]
    return next((p for p in PROTOCOLS if p in names), None)


def command_of(query: Sequence[tuple[str, str]]) -> list[str]:
    return [v for k, v in query if k == "command"]


def frame(payload: bytes, opcode: int = OP_BIN) -> bytes:
    """A server frame (never masked, RFC 6455 5.1)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def _read_exact(sock: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_frame(sock: Any) -> tuple[int, bytes]:
    b0, b1 = _read_exact(sock, 2)
    opcode, masked, n = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _read_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exact(sock, 8))[0]
    mask = _read_exact(sock, 4) if masked else b""
    data = _read_exact(sock, n) if n else b""
    if mask:
        data = unmask(data, mask)
    return opcode, data


def data_frames(sock: Any, lock: threading.Lock,
                opcodes: tuple[int, ...] = (OP_BIN, OP_TEXT, OP_CONT)) -> Iterator[bytes]:
    """The client's data frames of an upgraded connection, in order: pings answered (under `lock`, which
    guards every write to `sock`), other control frames skipped, the end at its close frame or when the
    connection goes. One reader for exec, attach and port-forward over WebSocket."""
    try:
        while True:
            opcode, data = read_frame(sock)
            if opcode == OP_CLOSE:
                return
            if opcode == OP_PING:
                with lock:
                    sock.sendall(frame(data, OP_PONG))
            elif opcode in opcodes and data:
                yield data
    except (EOFError, OSError):
        return


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR with the client's 4-byte mask (RFC 6455 5.3), a whole message at a time."""
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def exit_status(code: int, argv: Sequence[str]) -> dict[str, Any]:
    """The channel-3 message (remotecommand's error stream, k8s.io/kubelet cri streaming exec)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    if code < 0:  # killed by a signal: the shell's convention
        code = 128 - code
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command [{' '.join(argv)}], "
                       f"exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def check_request(pod: Mapping[str, Any], query: Sequence[tuple[str, str]], cluster: str) -> tuple[str, list[str]]:
    """The pod's network namespace and the command, or the API server's 400s."""
    params = dict(query)
    md = pod["metadata"]
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    container = params.get("container")
    if container and container not in names:
        raise errors.bad_request(f"container {container} is not valid for pod {md['name']}")
    argv = command_of(query)
    if not argv:
        raise errors.bad_request("you must specify at least 1 command")
    if not any(params.get(s) in ("true", "1") for s in ("stdin", "stdout", "stderr")):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return pod_netns(pod, cluster), argv


def pod_netns(pod: Mapping[str, Any], cluster: str) -> str:
    """The pod's sandbox namespace, or the 400 the API server gives for a pod not (yet) running."""
    md = pod["metadata"]
    ns = naming.pod_ns(cluster, md.get("namespace") or "default", md["name"])
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {md['name']} does not have a host assigned")
    if not os.path.exists(f"/run/netns/{ns}"):
        raise errors.bad_request(f"unable to upgrade connection: pod {md['name']} has no sandbox (yet)")
    return ns


def bridge(sock: socket.socket, ns: str, argv: list[str], query: Sequence[tuple[str, str]], protocol: str) -> None:
    """Run the command and carry its streams over the upgraded connection until it exits."""
    params = dict(query)
    want_in = params.get("stdin") in ("true", "1")
    want_out = params.get("stdout") in ("true", "1")
    want_err = params.get("stderr") in ("true", "1")
    lock = threading.Lock()

    def send(channel: int, data: bytes) -> None:
        with lock, contextlib.suppress(OSError):
            sock.sendall(frame(bytes([channel]) + data))

    try:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.PIPE if want_in else
                                subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        send(ERROR, json.dumps({"metadata": {}, "status": "Failure", "message": str(e),
                                "reason": "InternalError"}).encode())
        return

    def pump(stream: Any, channel: int, wanted: bool) -> None:
        for chunk in iter(lambda: stream.read1(32768), b""):
            if wanted:
                send(channel, chunk)

    pumps = [threading.Thread(target=pump, args=(proc.stdout, STDOUT, want_out), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, STDERR, want_err), daemon=True)]
    for p in pumps:
        p.start()

    def client() -> None:
        """Frames from the client: stdin data, its close (v5), resize (ignored), close, ping."""
        try:
            for data in data_frames(sock, lock):
                channel, payload = data[0], data[1:]
                if channel == STDIN and proc.stdin is not None:
                    if payload:
                        proc.stdin.write(payload)
                        proc.stdin.flush()
                elif channel == CLOSE and payload[:1] == bytes([STDIN]) and proc.stdin is not None:
                    proc.stdin.close()
        except (EOFError, OSError, ValueError):
            pass
        finally:
            if proc.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.close()
            if proc.poll() is None:  # the client left before the command ended: it ends too
                with contextlib.suppress(OSError):
                    proc.kill()

    reader = threading.Thread(target=client, daemon=True)
    reader.start()
    code = proc.wait()
    for p in pumps:
        p.join(timeout=5)
    send(ERROR, json.dumps(exit_status(code, argv)).encode())
    with lock, contextlib.suppress(OSError):
        sock.sendall(frame(struct.pack("!H", 1000), OP_CLOSE))
