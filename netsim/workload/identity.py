"""The one-line JSON identity the workload server answers with (a contract in docs/architecture.md).

Like the agnhost test server (kubernetes test/images/agnhost/netexec answers /hostname and /clientip),
but in one line for every protocol, so a prober learns in one round trip who answered and which source
address the server saw after any NAT on the way:
`{"pod": "ns/name", "node": "...", "clientIP": "...", "clientPort": N, "port": N, "protocol": "TCP"}`.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOLS = ("TCP", "UDP", "SCTP")


def identity(pod: str, node: str, client_ip: str, client_port: int, port: int, protocol: str) -> dict[str, Any]:
    return {"pod": pod, "node": node, "clientIP": client_ip, "clientPort": client_port, "port": port,
            "protocol": protocol}


def encode(ident: dict[str, Any], *, newline: bool = True) -> bytes:
    """Compact JSON bytes; TCP and UDP answers end in a newline, the SCTP cookie does not."""
    text = json.dumps(ident, separators=(", ", ": "))
    return (text + "\n" if newline else text).encode()


def decode(data: bytes) -> dict[str, Any] | None:
    """The identity in `data` (first line), or None when it is not one of ours."""
    line = data.split(b"\n", 1)[0].strip()
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("pod"), str):
        return None
    return obj
