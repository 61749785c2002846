"""The kubelet's httpGet probe against a real process (pkg/probe/http/http.go DoHTTPProbe, our own code).

A GET of `scheme://host:port/path` with the probe's httpHeaders, `User-Agent: kube-probe/...` and
`Accept: */*` unless the probe sets them; TLS is not verified (the prober's InsecureSkipVerify). The probe
succeeds when the status is 200 <= code < 400 (a redirect is not followed: upstream a redirect is a
success too, or followed to a success on the same host); a refused or timed-out connection fails it.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

USER_AGENT = "kube-probe/1.32"  # the emulated release (netsim.controlplane.nodes.KUBERNETES_VERSION)
MAX_BODY = 10 * 1024  # the prober reads at most 10 KiB of the body (probe.MaxProbeResponseLength)


def http_get_ok(ip: str, port: int, action: dict[str, Any], timeout: float) -> bool:
    """Run one httpGet probe from the current network namespace; True when the prober would say success."""
    return http_get(ip, port, action, timeout)[0]


def http_get(ip: str, port: int, action: dict[str, Any], timeout: float,
             make_socket: Callable[[], socket.socket] = socket.socket) -> tuple[bool, str]:
    """One httpGet probe: (success, output), the output worded as DoHTTPProbe's (`HTTP probe failed with
    statuscode: 500`, or Go's `Get "http://...": dial tcp ...`). `make_socket` makes the TCP socket in the
    namespace the probe comes from (a socket keeps its namespace, so only its creation needs to be there);
    by default the current thread's."""
    scheme = str(action.get("scheme") or "HTTP").upper()
    path = str(action.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in action.get("httpHeaders") or []:
        if isinstance(h, dict) and h.get("name"):
            headers[str(h["name"])] = str(h.get("value", ""))
    host = str(action.get("host") or ip)
    url = f"{scheme.lower()}://{host}:{port}{path}"
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    raw = make_socket()
    try:
        raw.settimeout(timeout)
        try:
            raw.connect((host, port))
        except OSError as exc:
            raw.close()
            if isinstance(exc, TimeoutError):
                return False, f'Get "{url}": dial tcp {host}:{port}: i/o timeout'
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            return False, f'Get "{url}": dial tcp {host}:{port}: connect: {reason}'
        if scheme == "HTTPS":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn.sock = ctx.wrap_socket(raw)
        else:
            conn.sock = raw
        conn.request("GET", path, headers=headers)
        res = conn.getresponse()
        body = res.read(MAX_BODY)
        if 200 <= res.status < 400:
            return True, body.decode(errors="replace")
        return False, f"HTTP probe failed with statuscode: {res.status}"
    except TimeoutError:
        return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return False, f'Get "{url}": {exc}'
    finally:
        conn.close()
        raw.close()
