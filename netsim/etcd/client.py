"""A small etcd v3 client over etcd's gRPC gateway (JSON over HTTP), with the standard library only.

etcd 3.4 serves every v3 RPC as JSON on its client URL (etcd Documentation/dev-guide/api_grpc_gateway.md):
`POST /v3/kv/range`, `/v3/kv/txn`, `/v3/kv/compaction`, `/v3/watch` (a stream: one JSON object per line,
each `{"result": WatchResponse}`), `/v3/lease/grant|keepalive|revoke`, `/v3/maintenance/status`. Messages
are the protobufs of api/etcdserverpb/rpc.proto in proto3 JSON: keys and values base64, int64 fields as
strings, fields at their default value (0, false, PUT) left out. The `etcd3` PyPI client would pull in gRPC
and a pinned old protobuf for what is a handful of POSTs.

One keep-alive HTTP connection per thread (the daemon's API-server threads share a store object); a watch
gets a connection of its own, closed when the watch is. With several endpoints a request that cannot reach
one goes to the next, as clientv3's balancer would.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from netsim.model.errors import NetsimError


class EtcdError(NetsimError):
    """etcd refused a request or cannot be reached."""


class EtcdCompacted(EtcdError):
    """A read or watch at a revision etcd has compacted away (mvcc.ErrCompacted)."""

    def __init__(self, compact_revision: int, message: str = ""):
        self.compact_revision = compact_revision
        super().__init__(message or f"required revision has been compacted (compacted at {compact_revision})")


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def unb64(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


def prefix_end(prefix: str) -> str:
    """The range_end that makes a range cover every key starting with `prefix` (clientv3.GetPrefixRangeEnd:
    the prefix with its last byte incremented). Our prefixes end in "/", so the last byte is never 0xff."""
    raw = prefix.encode()
    return (raw[:-1] + bytes([raw[-1] + 1])).decode()


@dataclass(frozen=True)
class KV:
    """mvccpb.KeyValue."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0  # the lease the key is attached to (0: none)

    @classmethod
    def of(cls, d: dict[str, Any]) -> KV:
        return cls(unb64(d.get("key")).decode(), unb64(d.get("value")), int(d.get("create_revision", 0)),
                   int(d.get("mod_revision", 0)), int(d.get("version", 0)), int(d.get("lease", 0)))


@dataclass(frozen=True)
class WatchEvent:
    """mvccpb.Event: PUT or DELETE of `kv` at kv.mod_revision; `prev` is the key's state before it."""

    type: str  # PUT | DELETE
    kv: KV
    prev: KV | None


def _endpoint(url: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname or not u.port:
        raise EtcdError(f"etcd endpoint {url!r}: expected http://HOST:PORT")
    return u.hostname, u.port


class Etcd:
    """The v3 calls netsim's store needs, against one etcd cluster."""

    def __init__(self, endpoints: list[str] | tuple[str, ...], timeout: float = 15.0):
        if not endpoints:
            raise EtcdError("no etcd endpoints")
        self.endpoints = [_endpoint(e) for e in endpoints]
        self.timeout = timeout
        self._local = threading.local()
        self._preferred = 0

    # -- plumbing ------------------------------------------------------------------------------------
    def _conn(self, i: int) -> http.client.HTTPConnection:
        conns = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(i)
        if conn is None:
            host, port = self.endpoints[i]
            conn = conns[i] = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return conn

    def _drop(self, i: int) -> None:
        conn = self._local.__dict__.get("conns", {}).pop(i, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for i in list(self._local.__dict__.get("conns", {})):
            self._drop(i)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST one request; the decoded response, or EtcdError with etcd's message."""
        data = json.dumps(body).encode()
        last: Exception | None = None
        n = len(self.endpoints)
        for k in range(n):
            i = (self._preferred + k) % n
            for attempt in range(2):  # a kept-alive connection the server closed: once more, afresh
                try:
                    conn = self._conn(i)
                    conn.request("POST", path, data, {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    raw = resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException) as exc:
                    self._drop(i)
                    last = exc
                    if attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                         ConnectionResetError)):
                        continue
                    break
                self._preferred = i
                try:
                    out = json.loads(raw) if raw else {}
                except ValueError:
                    raise EtcdError(f"etcd {path}: HTTP {status}: {raw[:200]!r}") from None
                if status != 200 or "error" in out:
                    msg = out.get("message") or out.get("error") or f"HTTP {status}"
                    if "required revision has been compacted" in msg:
                        raise EtcdCompacted(0, msg)
                    raise EtcdError(f"etcd {path}: {msg}")
                return out
        host, port = self.endpoints[self._preferred]
        raise EtcdError(f"cannot reach etcd at http://{host}:{port}: {last}")

    # -- KV ------------------------------------------------------------------------------------------
    def range(self, key: str, range_end: str | None = None, *, revision: int = 0, limit: int = 0,
              keys_only: bool = False, count_only: bool = False) -> tuple[int, list[KV], int]:
        """(header revision, kvs sorted by key, count) of a RangeRequest."""
        req: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            req["range_end"] = b64(range_end)
        if revision:
            req["revision"] = str(revision)
        if limit:
            req["limit"] = str(limit)
        if keys_only:
            req["keys_only"] = True
        if count_only:
            req["count_only"] = True
        out = self.call("/v3/kv/range", req)
        return (int(out["header"].get("revision", 0)), [KV.of(kv) for kv in out.get("kvs", [])],
                int(out.get("count", 0)))

    def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
            failure: list[dict[str, Any]] | None = None) -> tuple[bool, int, list[dict[str, Any]]]:
        """(succeeded, header revision, responses) of a TxnRequest."""
        out = self.call("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure or []})
        return bool(out.get("succeeded")), int(out["header"].get("revision", 0)), out.get("responses", [])

    def compact(self, revision: int) -> None:
        self.call("/v3/kv/compaction", {"revision": str(revision)})

    def status(self) -> dict[str, Any]:
        return self.call("/v3/maintenance/status", {})

    # -- leases --------------------------------------------------------------------------------------
    def lease_grant(self, ttl: int) -> int:
        return int(self.call("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """Renew `lease`; its remaining TTL (0: it had already expired)."""
        out = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int((out.get("result") or {}).get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        self.call("/v3/lease/revoke", {"ID": str(lease)})

    # -- watch ---------------------------------------------------------------------------------------
    def watch(self, key: str, range_end: str | None, start_revision: int, *, prev_kv: bool = False,
              timeout: float | None = None) -> Watch:
        return Watch(self, key, range_end, start_revision, prev_kv=prev_kv, timeout=timeout)


# Compare and request builders (etcdserverpb.Compare / RequestOp in JSON).

def mod_is(key: str, revision: int) -> dict[str, Any]:
    """mod_revision(key) == revision; 0 matches a key that does not exist (etcd compares a missing key's
    revisions as 0: server/etcdserver/apply.go applyCompare)."""
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def absent(key: str) -> dict[str, Any]:
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def created_at(key: str, revision: int) -> dict[str, Any]:
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": str(revision)}


def put(key: str, value: bytes | str, lease: int = 0) -> dict[str, Any]:
    req: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        req["lease"] = str(lease)
    return {"request_put": req}


def delete(key: str, range_end: str | None = None) -> dict[str, Any]:
    req = {"key": b64(key)}
    if range_end is not None:
        req["range_end"] = b64(range_end)
    return {"request_delete_range": req}


def get(key: str) -> dict[str, Any]:
    return {"request_range": {"key": b64(key)}}


class Watch:
    """One watcher on its own HTTP connection: `created_revision` (the store's revision when it started),
    then `responses()` yields (header revision, events) per WatchResponse. A watch from a compacted revision
    raises EtcdCompacted. `close()` ends it (the server cancels the watch with the stream)."""

    def __init__(self, client: Etcd, key: str, range_end: str | None, start_revision: int, *,
                 prev_kv: bool, timeout: float | None):
        req: dict[str, Any] = {"key": b64(key), "start_revision": str(start_revision)}
        if range_end is not None:
            req["range_end"] = b64(range_end)
        if prev_kv:
            req["prev_kv"] = True
        last: Exception | None = None
        for host, port in client.endpoints:
            try:
                self._conn = http.client.HTTPConnection(host, port, timeout=timeout or client.timeout)
                self._conn.request("POST", "/v3/watch", json.dumps({"create_request": req}).encode(),
                                   {"Content-Type": "application/json"})
                self._resp = self._conn.getresponse()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                last = exc
        else:
            raise EtcdError(f"cannot watch etcd: {last}")
        if self._resp.status != 200:
            body = self._resp.read()[:200]
            self.close()
            raise EtcdError(f"etcd /v3/watch: HTTP {self._resp.status}: {body!r}")
        self.created_revision = 0
        self._pending: list[tuple[int, list[WatchEvent]]] = []
        first = self._next()
        if first is not None:
            rev, events, created = first
            self.created_revision = rev
            if events:
                self._pending.append((rev, events))

    def settimeout(self, seconds: float | None) -> None:
        if self._conn.sock is not None:
            self._conn.sock.settimeout(seconds)

    def _next(self) -> tuple[int, list[WatchEvent], bool] | None:
        line = self._resp.readline()
        if not line:
            return None
        msg = json.loads(line)
        if "error" in msg:
            raise EtcdError(f"etcd watch: {msg['error'].get('message') or msg['error']}")
        res = msg.get("result") or {}
        if res.get("compact_revision") and res.get("canceled"):
            raise EtcdCompacted(int(res["compact_revision"]))
        if res.get("canceled"):
            raise EtcdError(f"etcd cancelled the watch: {res.get('cancel_reason') or 'no reason given'}")
        events = [WatchEvent(e.get("type", "PUT"), KV.of(e["kv"]), KV.of(e["prev_kv"]) if e.get("prev_kv") else None)
                  for e in res.get("events", [])]
        return int((res.get("header") or {}).get("revision", 0)), events, bool(res.get("created"))

    def responses(self) -> Iterator[tuple[int, list[WatchEvent]]]:
        """Each WatchResponse carrying events, as they come; socket.timeout when none comes in time."""
        while self._pending:
            yield self._pending.pop(0)
        while True:
            nxt = self._next()
            if nxt is None:
                raise EtcdError("etcd closed the watch stream")
            rev, events, _ = nxt
            if events:
                yield rev, events

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["KV", "Etcd", "EtcdCompacted", "EtcdError", "Watch", "WatchEvent", "absent", "b64", "created_at",
           "delete", "get", "mod_is", "prefix_end", "put", "unb64"]
