"""`spec.store` of the Cluster spec: which engine holds the cluster's objects.

    store:
      type: etcd                       # sqlite (default: one file in the state dir) | etcd
      endpoints: [http://127.0.0.1:2379]   # etcd only; none: netsim runs a private etcd for the cluster

With `type: etcd` and no endpoints `netsim up` starts an etcd server of its own (netsim.etcd.server) on
loopback ports, with its data in the cluster's state directory, and `down` removes it. Given endpoints
must be plain-HTTP loopback URLs (netsim never sends traffic off the machine); the cluster's keys live
under `/netsim/<cluster>/` there and `down` deletes them.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass
from typing import Any

from netsim.model.meta import Fields

STORE_TYPES = ("sqlite", "etcd")


@dataclass(frozen=True)
class StoreSpec:
    type: str = "sqlite"
    endpoints: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Nothing for the default (so a default spec prints nothing)."""
        if self == StoreSpec():
            return {}
        return {"type": self.type, **({"endpoints": list(self.endpoints)} if self.endpoints else {})}


def endpoint_problem(url: str) -> str | None:
    """Why `url` cannot be an etcd endpoint, or None."""
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc})"
    if u.scheme != "http" or not u.hostname or port is None or u.path not in ("", "/"):
        return f"{url!r} is not an etcd client URL of the form http://HOST:PORT"
    host = u.hostname
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return f"{url!r}: netsim only talks to an etcd on this machine's loopback (127.0.0.0/8, ::1, localhost)"
    return None


def parse_store(f: Fields) -> StoreSpec:
    f.reject_unknown({"type", "endpoints"})
    typ = f.str("type", "sqlite", choices=STORE_TYPES)
    assert typ is not None
    endpoints = f.list("endpoints")
    if endpoints and typ != "etcd":
        raise f.error("endpoints", "only an etcd store has endpoints (set type: etcd)")
    for i, e in enumerate(endpoints):
        if not isinstance(e, str):
            raise f.error(f"endpoints[{i}]", f"must be a string, got {type(e).__name__} {e!r}")
        problem = endpoint_problem(e)
        if problem:
            raise f.error(f"endpoints[{i}]", problem)
    return StoreSpec(typ, tuple(endpoints))
