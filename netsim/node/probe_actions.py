"""One probe, run as the kubelet's probers do (pkg/probe/http, pkg/probe/tcp, pkg/probe/exec, pkg/probe/grpc),
returning (success, output) with upstream's wording for failures, which the Unhealthy event carries.

httpGet and tcpSocket connect from the node's network namespace to the pod IP, as the kubelet does from
the host; exec runs the command inside the pod's network namespace. A container without a `command` is
played by the workload server, which answers HTTP and gRPC health for real, so its httpGet, tcpSocket and
grpc probes are real too; only its exec probes cannot run (they name a binary inside the image, which is
not run) and succeed.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import Any

from netsim.kernel.api import Kernel
from netsim.node.grpc_probe import grpc_check
from netsim.node.http_probe import http_get


def probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int | None:
    """The port a tcpSocket/httpGet/grpc probe connects to: a number, or the name of a declared containerPort
    (grpc takes a number only)."""
    action = probe.get("tcpSocket") or probe.get("httpGet") or probe.get("grpc")
    if not isinstance(action, dict):
        return None
    port = action.get("port")
    if isinstance(port, str) and not port.isdigit():
        return next((int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name") == port), None)
    try:
        return int(port) if port is not None and 0 < int(port) < 65536 else None
    except (TypeError, ValueError):
        return None


def _dial_error(ip: str, port: int, exc: BaseException) -> str:
    """Go's net.Dial error text: `dial tcp 10.244.1.5:8080: connect: connection refused`."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"dial tcp {ip}:{port}: i/o timeout"
    code = getattr(exc, "errno", None)
    text = os.strerror(code).lower() if code else str(exc)
    return f"dial tcp {ip}:{port}: connect: {text}"


def tcp_probe(ip: str, port: int, timeout: float,
              make_socket: Callable[[], socket.socket] = socket.socket) -> tuple[bool, str]:
    """pkg/probe/tcp DoTCPProbe: a connection that opens is a success; it is closed at once."""
    with make_socket() as s:
        s.settimeout(timeout)
        try:
            s.connect((ip, port))
        except OSError as exc:
            return False, _dial_error(ip, port, exc)
    return True, ""


def run_probe(kernel: Kernel, *, node_ns: str, pod_ns: str, ip: str, container: dict[str, Any],
              probe: dict[str, Any], timeout: float, played: bool) -> tuple[bool, str]:
    """Run one probe of `container` (`played`: the workload server plays it); (success, output)."""
    if "exec" in probe:
        if played:
            return True, ""  # the command names a binary inside the image, which is not run
        argv = list((probe["exec"] or {}).get("command") or [])
        try:
            res = kernel.run(pod_ns, argv, check=False, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a command that cannot run fails the probe
            if getattr(exc, "errno", None) == errno.ETIMEDOUT or isinstance(exc, TimeoutError):
                return False, f"command {' '.join(argv)!r} timed out"
            return False, str(exc)
        output = ((getattr(res, "stdout", "") or "") + (getattr(res, "stderr", "") or "")).strip()
        if res.returncode == 0:
            return True, output
        # pkg/probe/exec: a non-zero exit is a failure whose output is what the command printed.
        return False, output or f"command {' '.join(argv)!r} exited with {res.returncode}"
    port = probe_port(container, probe)
    if port is None:
        action = probe.get("tcpSocket") or probe.get("httpGet") or probe.get("grpc") or {}
        return False, f"unknown port {action.get('port')!r} for container {container.get('name')!r}"
    # Only the socket is made on the kernel's namespace thread (a socket keeps its namespace); the connect
    # and the exchange run here, on the prober's thread, so a slow or silent peer never holds that thread.
    def make_socket() -> socket.socket:
        return kernel.call_in(node_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC))
    if "httpGet" in probe:
        return http_get(ip, port, probe["httpGet"] or {}, timeout, make_socket)
    if "grpc" in probe:
        service = str((probe["grpc"] or {}).get("service") or "")
        return grpc_check(ip, port, service, timeout, make_socket)
    if "tcpSocket" in probe:
        return tcp_probe(ip, port, timeout, make_socket)
    return True, ""

