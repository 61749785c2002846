"""The cluster's Kubernetes API endpoint: HTTPS on 127.0.0.1, run by the daemon in threads of its own.

Transport and authentication as kube-apiserver's (k8s.io/apiserver pkg/server/secure_serving.go,
pkg/authentication/request/x509 and bearertoken): TLS with the cluster CA, client certificates verified
when given (the subject's CN is the user, its O entries the groups), or `Authorization: Bearer <token>`
with the token made at `up`, or a ServiceAccount token a pod was given (satoken.py: the serviceaccount
token authenticator); a request with none of them is 401 Unauthorized (anonymous requests are off, as
with `--anonymous-auth=false`). Every authenticated user may do everything (the admin is in
system:masters; netsim has no RBAC, so ServiceAccounts may do everything too), which is also what
`SelfSubjectAccessReview` answers.

In-cluster clients reach the same server through the `kubernetes` Service: `serve_in_netns` adds a second
listening socket opened inside the first node's network namespace on <node IP>:6443 (the EndpointSlice
the daemon writes points there, as kube-apiserver's endpoint reconciler writes its advertise address),
served by the same handler, certificates and store; nothing is bound in the host's namespace for it.

Routing follows the API's paths (pkg/endpoints/installer.go): /api/v1/..., /apis/G/V/...,
`namespaces/NS/<resource>[/<name>[/<subresource>]]` for namespaced kinds. Each request thread reads and
writes through the server's own store connection (SQLite in WAL mode: the daemon loop's connection is
never shared), and writes go through the code `netsim apply` uses (handlers.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from netsim import naming
from netsim.apiserver import (
    certs,
    discovery,
    errors,
    eviction,
    execws,
    logs,
    logtimes,
    openapi,
    portforward,
    protobuf,
    satoken,
    streaming,
    tables,
    watch,
)
from netsim.apiserver.endpoint import HOST, ApiEndpoint
from netsim.apiserver.handlers import Handlers, Target
from netsim.controlplane.events import Event
from netsim.model.cluster import ClusterSpec
from netsim.store import SQLiteStore, Store, StoreLocked, parse_time, rfc3339

log = logging.getLogger("netsim.apiserver")

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-netsim", "gitCommit": "netsim",
           "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z", "goVersion": "python",
           "compiler": "netsim", "platform": "linux/amd64"}
MAX_BODY = 3 * 1024 * 1024  # the API server's request size limit (3 MiB)
JSON = "application/json"


class ServerStopping(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], handler: type, api: ApiServer, sock: socket.socket | None = None):
        self.api = api
        super().__init__(addr, handler, bind_and_activate=sock is None)
        if sock is not None:  # an already listening socket (opened in a node's network namespace)
            self.socket.close()
            self.socket = sock
            self.server_address = sock.getsockname()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # The TLS handshake happens in the request's own thread (setup), never in the accept loop.
        return self.api.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class ApiServer:
    """The API server of one cluster. `start()` binds and serves in a thread; `stop()` ends it."""

    def __init__(self, endpoint: ApiEndpoint, spec: ClusterSpec, store_path: str | Store, *,
                 clock: Callable[[], float] = time.time):
        self.endpoint = endpoint
        self.spec = spec
        # A path: the SQLite store there; else the cluster's store as opened (etcd), its own object.
        self.store = store_path if isinstance(store_path, Store) else SQLiteStore(store_path)
        self.handlers = Handlers(self.store, spec, clock)
        self.clock = clock
        pki = endpoint.pki
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self.tls.load_cert_chain(pki.server_crt, pki.server_key)
        self.tls.load_verify_locations(pki.ca_crt)
        self.tls.verify_mode = ssl.CERT_OPTIONAL  # verified if given; none given: a token, or 401
        self.tls.set_alpn_protocols(["http/1.1"])
        with open(pki.token) as f:
            self.token = f.read().strip()
        self.log_clock: logtimes.LogClock | None = None
        self.kernel: Any = None  # the daemon's kernel handle (set by serve_in_cluster): port-forward's way in
        self._sa_key: Any = None  # the service-account key, loaded on the first token that needs it
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._incluster: tuple[_Server, threading.Thread] | None = None
        self._stopping = threading.Event()
        self.error: str | None = None
        self.requests = 0
        self.handler_errors = 0

    def start(self) -> None:
        state = naming.state_dir(self.endpoint.cluster)
        if os.path.isdir(state):  # the times of log lines (pods/log?timestamps=true, sinceSeconds)
            try:
                self.log_clock = logtimes.LogClock(os.path.join(state, "logs"))
                self.log_clock.start()
            except OSError as e:
                log.error("log line times are not recorded: %s", e)
                self.log_clock = None
        self._httpd = _Server((HOST, self.endpoint.port), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="netsim-apiserver", daemon=True)
        self._thread.start()

    def serve_in_netns(self, sock: socket.socket) -> None:
        """Serve on a listening socket opened in a node's namespace (the in-cluster endpoint)."""
        sock.setblocking(True)
        httpd = _Server(sock.getsockname()[:2], _Handler, self, sock)
        t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                             name="netsim-apiserver-incluster", daemon=True)
        t.start()
        self._incluster = (httpd, t)

    def stop(self) -> None:
        self._stopping.set()
        if self.log_clock is not None:
            self.log_clock.stop()
        servers = [(self._httpd, self._thread)] + ([self._incluster] if self._incluster else [])
        for httpd, _ in servers:
            if httpd is not None:
                httpd.shutdown()
                httpd.server_close()
        for _, thread in servers:
            if thread is not None:
                thread.join(timeout=5)
        self.store.close()

    def stopping(self) -> bool:
        return self._stopping.is_set()

    def health(self) -> dict[str, Any]:
        alive = self._thread is not None and self._thread.is_alive()
        out = {"state": "running" if alive else "dead", "error": self.error, "port": self.endpoint.port,
               "requests": self.requests, "handlerErrors": self.handler_errors}
        if self._incluster is not None:
            host, port = self._incluster[0].server_address[:2]
            out["inCluster"] = {"address": f"{host}:{port}",
                                "state": "running" if self._incluster[1].is_alive() else "dead"}
        return out

    def authenticate(self, sock: ssl.SSLSocket, headers: Any) -> tuple[str, tuple[str, ...]] | None:
        try:
            der = sock.getpeercert(binary_form=True)
        except (ValueError, OSError):  # the peer went away (or never finished the handshake)
            return None
        if der:
            return certs.subject_of(der)
        auth = headers.get("Authorization") or ""
        # bearertoken.go AuthenticateRequest: the scheme is matched case-insensitively (the Python client
        # sends "bearer ...").
        scheme, _, token = auth.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if token == self.token:
            return certs.ADMIN_USER, certs.ADMIN_GROUPS
        if satoken.looks_like_jwt(token):
            if self._sa_key is None:
                self._sa_key = satoken.load_key(self.endpoint.pki.root)
            return satoken.verify(self._sa_key, self.spec.dns_domain, token, self.store.get)
        return None


class Response:
    def __init__(self, code: int, body: Any, content_type: str = JSON, *, stream: Iterator[bytes] | None = None,
                 upgrade: Callable[[Any], None] | None = None, headers: dict[str, str] | None = None):
        self.code, self.body, self.content_type, self.stream = code, body, content_type, stream
        self.upgrade, self.headers = upgrade, headers or {}


def _query(url: str) -> tuple[list[str], dict[str, str]]:
    parts = urlsplit(url)
    segs = [s for s in parts.path.split("/") if s]
    return segs, dict(parse_qsl(parts.query, keep_blank_values=True))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "netsim-apiserver"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(30)
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise
        self.connection.settimeout(None)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    # every verb goes through one dispatcher
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        """The whole request body, read before anything is answered so a kept-alive connection stays in
        step whatever the answer is."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise errors.ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
        return self.rfile.read(length) if length > 0 else b""

    def _decoder(self, raw: bytes) -> Callable[[], Any]:
        def decode() -> Any:
            if not raw:
                return None
            ctype = (self.headers.get("Content-Type") or JSON).split(";")[0].strip()
            if ctype == protobuf.CONTENT_TYPE:
                return protobuf.decode(raw)
            try:
                if ctype in ("application/yaml", "application/apply-patch+yaml"):
                    return yaml.safe_load(raw)
                if ctype in (JSON, "application/json-patch+json", "application/merge-patch+json",
                             "application/strategic-merge-patch+json", "*/*", ""):
                    return json.loads(raw)
            except (ValueError, yaml.YAMLError) as e:
                raise errors.bad_request(f"the body of the request could not be decoded: {e}") from None
            raise errors.unsupported_media_type(ctype)
        return decode

    def _dispatch(self, method: str) -> None:
        api = self.server.api
        api.requests += 1
        try:
            raw = self._read_body()
            if api.authenticate(self.connection, self.headers) is None:
                raise errors.unauthorized()
            resp = route(api, method, self.path, self.headers, self._decoder(raw))
        except errors.ApiError as e:
            resp = Response(e.code, e.status())
        except StoreLocked as e:  # a writer stuck in another process: not this server's bug
            resp = Response(504, errors.timeout(str(e)).status())
        except Exception as e:  # a bug answers 500 and the server goes on
            api.handler_errors += 1
            log.exception("%s %s failed", method, self.path)
            resp = Response(500, errors.internal(f"{type(e).__name__}: {e}").status())
        self._send(resp)

    def _send(self, resp: Response) -> None:
        if resp.upgrade is not None:
            self.send_response(101)
            for k, v in resp.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.close_connection = True
            try:
                resp.upgrade(streaming.Upgraded(self.connection, self.rfile))
            except (OSError, ssl.SSLError):
                pass
            return
        if resp.stream is not None:
            self.send_response(resp.code)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            try:
                for chunk in resp.stream:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (OSError, ssl.SSLError):
                self.close_connection = True
            return
        if isinstance(resp.body, (bytes, bytearray)):
            data = bytes(resp.body)
        elif isinstance(resp.body, str):
            data = resp.body.encode()
        else:
            data = json.dumps(resp.body).encode()
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        with contextlib.suppress(OSError, ssl.SSLError):
            self.wfile.write(data)


# -- routing ------------------------------------------------------------------------------------------
HEALTH = ("healthz", "livez", "readyz")


def route(api: ApiServer, method: str, url: str, headers: Any, body: Callable[[], Any]) -> Response:
    segs, query = _query(url)
    query.pop("__manager", None)
    # The default field manager: the User-Agent up to its first "/" (fieldmanager's prefixFromUserAgent).
    query["__manager"] = (headers.get("User-Agent") or "unknown").split("/", 1)[0][:128] or "unknown"
    accept = headers.get("Accept") or JSON
    h = api.handlers
    if not segs:
        return Response(200, {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2",
                                        "/openapi/v3", "/readyz", "/version"]})
    if segs[0] in HEALTH:
        return Response(200, "ok", "text/plain; charset=utf-8")
    if segs == ["version"]:
        return Response(200, VERSION)
    if segs[0] == "openapi":
        return _openapi(api, segs[1:], accept)
    if segs[0] == "api":
        if len(segs) == 1:
            agg = discovery.aggregated_version(accept)
            if agg:
                return _aggregated(api, legacy=True, version=agg)
            return Response(200, discovery.api_versions(f"{HOST}:{api.endpoint.port}"))
        group, version, rest = "", segs[1], segs[2:]
    elif segs[0] == "apis":
        cat = h.catalog()
        if len(segs) == 1:
            agg = discovery.aggregated_version(accept)
            if agg:
                return _aggregated(api, legacy=False, version=agg)
            return Response(200, discovery.group_list(cat))
        if len(segs) == 2:
            doc = discovery.group(cat, segs[1])
            if doc is None:
                raise errors.resource_not_found()
            return Response(200, doc)
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        raise errors.resource_not_found()
    if not rest:
        if method != "GET":
            raise errors.method_not_allowed(method, "")
        doc = discovery.resource_list(h.catalog(), group, version)
        if doc is None:
            raise errors.resource_not_found()
        return Response(200, doc)
    return _resource(api, method, group, version, rest, query, headers, accept, body, url)


def _aggregated(api: ApiServer, *, legacy: bool, version: str) -> Response:
    ctype = discovery.AGGREGATED_V2 if version == "v2" else discovery.AGGREGATED_V2BETA1
    return Response(200, discovery.aggregated(api.handlers.catalog(), legacy=legacy, version=version), ctype)


def _openapi(api: ApiServer, rest: list[str], accept: str) -> Response:
    cat = api.handlers.catalog()
    if rest == ["v2"]:
        if "protobuf" in accept:
            return Response(200, b"", openapi.PROTOBUF_V2)
        return Response(200, openapi.v2_json(cat))
    if rest == ["v3"]:
        return Response(200, openapi.v3_index(cat))
    if len(rest) >= 3 and rest[0] == "v3":
        if rest[1] == "api" and len(rest) == 3:
            doc = openapi.v3_group(cat, "", rest[2])
        elif rest[1] == "apis" and len(rest) == 4:
            doc = openapi.v3_group(cat, rest[2], rest[3])
        else:
            doc = None
        if doc is not None:
            return Response(200, doc)
    raise errors.resource_not_found()


def _parse_target(api: ApiServer, group: str, version: str, rest: list[str]) -> Target:
    cat = api.handlers.catalog()
    ns = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")
                                                           and cat.lookup(group, version, rest[2]) is None):
        ns, rest = rest[1], rest[2:]
    res = cat.lookup(group, version, rest[0])
    if res is None or len(rest) > 3:
        raise errors.resource_not_found()
    if ns is not None and not res.namespaced:
        raise errors.resource_not_found()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in res.subresources:
        raise errors.resource_not_found()
    return Target(res, ns, name, sub)


def _list_kind(t: Target) -> str:
    return f"{t.res.kind}List"


def _resource(api: ApiServer, method: str, group: str, version: str, rest: list[str], query: dict[str, str],
              headers: Any, accept: str, body: Callable[[], Any], url: str) -> Response:
    h = api.handlers
    t = _parse_target(api, group, version, rest)
    if t.res.namespaced and t.namespace is None and t.res.stored_kind != "Namespace":
        # Across namespaces there is only LIST and WATCH (installer.go registers nothing else there).
        if t.name is not None:
            raise errors.resource_not_found()
        if method != "GET":
            raise errors.method_not_allowed(method, t.res.plural)
    want_table = tables.wants_table(accept)
    if "get" not in t.res.verbs:
        return _request_kind(api, method, t, body)
    if t.subresource in ("exec", "attach", "portforward"):
        return _stream(api, t, method, url, headers)
    if t.subresource == "eviction":
        if method != "POST":
            raise errors.method_not_allowed(method, t.res.plural)
        return _evict(api, t, body, query)
    if t.subresource == "log":
        if method != "GET":
            raise errors.method_not_allowed(method, t.res.plural)
        return _log(api, t, query)
    if t.res.stored_kind == "Event" and method == "GET" and t.name is None:
        return _events(api, t, query, accept)
    if method == "GET":
        if t.name is None:
            if query.get("watch") in ("true", "1"):
                return _watch(api, t, query, accept)
            items, rv, cont, remaining = h.list(t, query)
            if want_table:
                return Response(200, tables.table(t.res.stored_kind, items, resource_version=str(rv),
                                                  include=query.get("includeObject") or "Metadata",
                                                  version=tables.table_version(accept), cont=cont,
                                                  remaining=remaining))
            md: dict[str, Any] = {"resourceVersion": str(rv)}
            if cont:
                md["continue"] = cont
                md["remainingItemCount"] = remaining
            return Response(200, {"kind": _list_kind(t), "apiVersion": t.res.group_version, "metadata": md,
                                  "items": items})
        obj = h.get(t)
        if t.subresource == "scale":
            return Response(200, h.scale_of(t, obj))
        if want_table:
            return Response(200, tables.table(t.res.stored_kind, [obj], resource_version=obj["metadata"]["resourceVersion"],
                                              include=query.get("includeObject") or "Metadata",
                                              version=tables.table_version(accept)))
        return Response(200, obj)
    if method == "POST":
        if t.name is not None:
            raise errors.method_not_allowed(method, t.res.plural)
        obj = h.create(t, body(), query)
        return Response(201 if query.get("dryRun") != "All" else 200, obj)
    if method == "PUT":
        if t.name is None:
            raise errors.method_not_allowed(method, t.res.plural)
        return Response(200, h.update(t, body(), query))
    if method == "PATCH":
        if t.name is None:
            raise errors.method_not_allowed(method, t.res.plural)
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
        return Response(200, h.patch(t, body(), ctype, query))
    if method == "DELETE":
        if t.subresource:
            raise errors.method_not_allowed(method, t.res.plural)
        if t.name is None:
            items = h.delete_collection(t, body(), query)
            return Response(200, {"kind": _list_kind(t), "apiVersion": t.res.group_version,
                                  "metadata": {"resourceVersion": str(h.store.current_rv())}, "items": items})
        return Response(200, h.delete(t, body(), query))
    raise errors.method_not_allowed(method, t.res.plural)


def _evict(api: ApiServer, t: Target, body: Callable[[], Any], query: dict[str, str]) -> Response:
    """policy/v1 Eviction (what kubectl drain posts): PodDisruptionBudgets consulted as the API server
    does (eviction.py), then the pod deleted as a DELETE would delete it, with the Eviction's
    deleteOptions. kubectl sends the Eviction as protobuf; only a JSON one's deleteOptions are read."""
    try:
        req = body() or {}
    except errors.ApiError as e:
        if e.code != 415:
            raise
        req = {}
    opts = req.get("deleteOptions") if isinstance(req, dict) else None
    opts = opts if isinstance(opts, dict) else None
    dry_run = query.get("dryRun") == "All" or "All" in ((opts or {}).get("dryRun") or [])
    pod = api.handlers.get(Target(t.res, t.namespace, t.name))
    eviction.evict(api.store, pod, api.clock(), dry_run,
                   lambda: api.handlers.delete(Target(t.res, t.namespace, t.name), opts, {}))
    return Response(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})


def _stream(api: ApiServer, t: Target, method: str, url: str, headers: Any) -> Response:
    """exec, attach and portforward: checked, then upgraded to WebSocket or SPDY (streaming.py)."""
    if method not in ("GET", "POST"):
        raise errors.method_not_allowed(method, t.res.plural)
    pod = api.handlers.get(t)
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    query = dict(pairs)
    ws, sp = streaming.is_websocket(headers), streaming.is_spdy(headers)
    name = pod["metadata"]["name"]
    if t.subresource == "portforward":
        ns = execws.pod_netns(pod, api.endpoint.cluster)
        connect = streaming.pod_connector(api.kernel, ns)
        if ws:
            offer = streaming.offered(headers, "Sec-WebSocket-Protocol")
            if portforward.TUNNEL_PROTOCOL in offer:
                return _ws(headers, portforward.TUNNEL_PROTOCOL,
                           lambda c: portforward.serve_tunnel(c, connect, name, ns))
            proto = streaming.negotiate(offer, portforward.WS_PROTOCOLS, "port forwarding")
            ports = portforward.ports_of(pairs)
            return _ws(headers, proto, lambda c: portforward.serve_channels(c, connect, ports, name, ns))
        if sp:
            proto = streaming.negotiate(streaming.offered(headers, "X-Stream-Protocol-Version"),
                                        (portforward.SPDY_PROTOCOL,), "port forwarding")
            return _spdy(proto, lambda c: streaming.portforward_spdy(c, connect, name, ns))
        raise streaming.upgrade_required("pods/portforward")
    if t.subresource == "exec":
        ns, argv = execws.check_request(pod, pairs, api.endpoint.cluster)
        if ws:
            proto = streaming.negotiate(streaming.offered(headers, "Sec-WebSocket-Protocol"), execws.PROTOCOLS,
                                        "exec")
            return _ws(headers, proto, lambda c: execws.bridge(c, ns, argv, pairs, proto))
        if sp:
            proto = streaming.negotiate(streaming.offered(headers, "X-Stream-Protocol-Version"),
                                        streaming.REMOTECOMMAND_SPDY, "exec")
            return _spdy(proto, lambda c: streaming.exec_spdy(c, ns, argv, query))
        raise streaming.upgrade_required("pods/exec")
    # attach
    execws.check_request(pod, [*pairs, ("command", "attach")], api.endpoint.cluster)
    path = logs.log_path(api.endpoint.cluster, pod, {"container": query.get("container", "")})
    uid = pod["metadata"].get("uid")

    def alive() -> bool:
        cur = api.store.get("Pod", t.store_ns, t.name)
        return cur is not None and cur["metadata"].get("uid") == uid
    if ws:
        proto = streaming.negotiate(streaming.offered(headers, "Sec-WebSocket-Protocol"), execws.PROTOCOLS, "attach")
        return _ws(headers, proto, lambda c: streaming.attach_ws(c, path, query, alive, api.stopping))
    if sp:
        proto = streaming.negotiate(streaming.offered(headers, "X-Stream-Protocol-Version"),
                                    streaming.REMOTECOMMAND_SPDY, "attach")
        return _spdy(proto, lambda c: streaming.attach_spdy(c, path, query, alive, api.stopping))
    raise streaming.upgrade_required("pods/attach")


def _ws(headers: Any, protocol: str, run: Callable[[Any], None]) -> Response:
    return Response(101, None, upgrade=run, headers=streaming.ws_headers(headers, protocol))


def _spdy(protocol: str, run: Callable[[Any], None]) -> Response:
    return Response(101, None, upgrade=run, headers=streaming.spdy_headers(protocol))


def _log(api: ApiServer, t: Target, query: dict[str, str]) -> Response:
    pod = api.handlers.get(t)
    path = logs.log_path(api.endpoint.cluster, pod, query)
    data = logs.read(path, query)
    if query.get("follow") not in ("true", "1"):
        return Response(200, data, "text/plain")
    uid = pod["metadata"].get("uid")

    def still_there() -> bool:
        cur = api.store.get("Pod", t.store_ns, t.name)
        return cur is not None and cur["metadata"].get("uid") == uid
    return Response(200, None, "text/plain", stream=logs.follow(path, data, still_there, api.stopping, query))


def _watch(api: ApiServer, t: Target, query: dict[str, str], accept: str) -> Response:
    h = api.handlers
    as_table = tables.wants_table(accept)
    include = query.get("includeObject") or "Metadata"

    def render(typ: str, obj: dict[str, Any]) -> dict[str, Any]:
        if as_table:
            obj = tables.table(t.res.stored_kind, [obj], resource_version=obj["metadata"].get("resourceVersion", ""),
                               include=include, version=tables.table_version(accept))
        return {"type": typ, "object": obj}

    gen = watch.events(h, t, query, api.stopping, render)

    def stream() -> Iterator[bytes]:
        for ev in gen:
            yield json.dumps(ev).encode() + b"\n"

    return Response(200, None, JSON, stream=stream())


def _request_kind(api: ApiServer, method: str, t: Target, body: Callable[[], Any]) -> Response:
    """Reviews: created and answered, never stored. Access reviews are allowed (no RBAC here);
    SelfSubjectReview says who the caller is."""
    if method != "POST" or t.name is not None:
        raise errors.method_not_allowed(method, t.res.plural)
    try:
        req = body() or {}
    except errors.ApiError as e:
        if e.code != 415:
            raise
        # A protobuf review (kubectl auth can-i, whoami send them): the answer does not depend on the
        # request here, so it is answered without reading it.
        req = {}
    if not isinstance(req, dict):
        raise errors.bad_request("the body of the request must be an object")
    out = {"apiVersion": t.res.group_version, "kind": t.res.kind, "metadata": {"creationTimestamp": None},
           "spec": req.get("spec") or {}}
    if t.res.kind in ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview"):
        out["status"] = {"allowed": True, "reason": "netsim has no RBAC: every authenticated user may do anything"}
    elif t.res.kind == "SelfSubjectRulesReview":
        out["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                         "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
    elif t.res.kind == "SelfSubjectReview":
        out["status"] = {"userInfo": {"username": certs.ADMIN_USER,
                                      "groups": [*certs.ADMIN_GROUPS, "system:authenticated"]}}
    else:
        raise errors.method_not_allowed(method, t.res.plural)
    return Response(201, out)


# -- events -------------------------------------------------------------------------------------------
def involved(ref: str) -> tuple[str, str, str]:
    """(kind, namespace, name) of a timeline object reference: "Kind ns/name", "Kind name" or the
    data plane's "node/NAME"."""
    if " " in ref:
        kind, _, key = ref.partition(" ")
        ns, _, name = key.rpartition("/")
        return kind, ns, name
    if "/" in ref:
        kind, _, name = ref.partition("/")
        return kind.capitalize(), "", name
    return "Cluster", "", ref


def timeline_event(api: ApiServer, e: Event, uids: dict[str, str]) -> dict[str, Any]:
    """A timeline record as a core/v1 Event (involvedObject from "Kind ns/name"; the uid is the object's
    current one, so kubectl describe's field selector finds its events)."""
    kind, ns, name = involved(e.object)
    when = rfc3339(e.time)
    component = e.actor.split("/", 1)[0]
    host = e.actor.split("/", 1)[1] if "/" in e.actor else ""
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{e.seq:016x}", "namespace": ns or "default",
                         "resourceVersion": str(e.seq), "creationTimestamp": when, "uid": f"netsim-event-{e.seq}"},
            "involvedObject": {"kind": kind, "namespace": ns or None, "name": name,
                               "uid": uids.get(e.object, "")},
            "reason": e.reason, "message": e.message, "type": e.type,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": when, "lastTimestamp": when, "count": 1, "reportingComponent": component,
            "reportingInstance": host}


def _timeline(api: ApiServer, t: Target, query: dict[str, str], since: int) -> tuple[list[dict[str, Any]], int]:
    """The timeline's records after sequence `since` as Events of `t`'s group, filtered; and the last seq."""
    from netsim.apiserver.handlers import selected, selectors
    label, field = selectors(query, "Event")
    uids: dict[str, str] = {}
    made = []
    last = since
    for rec in api.store.events_since(since):
        last = rec["seq"]
        e = Event.from_record(rec)
        if e.object not in uids:
            kind, ns, name = involved(e.object)
            cur = api.store.get(kind, ns or None, name) if kind and name else None
            uids[e.object] = (cur or {}).get("metadata", {}).get("uid", "")
        ev = timeline_event(api, e, uids)
        if t.namespace and ev["metadata"]["namespace"] != t.namespace:
            continue
        if selected(ev, "Event", label, field):
            made.append(ev)
    if t.res.group == "events.k8s.io":
        made = [_events_v1(ev) for ev in made]
    return [api.handlers.present(t, ev) if t.res.group == "" else ev for ev in made], last


def _events(api: ApiServer, t: Target, query: dict[str, str], accept: str) -> Response:
    """Events: the stored Event objects and the control plane's timeline (netsim.controlplane.events),
    served read-only as core/v1 (and events.k8s.io/v1) Events. A watch follows the timeline: from its
    start without a resourceVersion (as ADDED events), else from the newest record when the watch begins
    (timeline records are numbered apart from the store's resourceVersions)."""
    h = api.handlers
    if query.get("watch") in ("true", "1"):
        return _events_watch(api, t, query, accept)
    items, rv, _, _ = h.list(t, {k: v for k, v in query.items() if k in ("labelSelector", "fieldSelector")})
    made, _ = _timeline(api, t, query, 0)
    items = items + made
    items.sort(key=lambda ev: parse_time(ev.get("lastTimestamp") or ev.get("eventTime")
                                         or ev["metadata"].get("creationTimestamp")) or 0)
    if tables.wants_table(accept):
        return Response(200, _event_table(items, str(rv), accept, query))
    return Response(200, {"kind": "EventList", "apiVersion": t.res.group_version,
                          "metadata": {"resourceVersion": str(rv)}, "items": items})


def _events_watch(api: ApiServer, t: Target, query: dict[str, str], accept: str) -> Response:
    from netsim.apiserver.handlers import selectors
    selectors(query, "Event")  # bad selectors answer 400 before the stream starts
    from_start = (query.get("resourceVersion") or "") in ("", "0")
    recs = api.store.events_since(0) if not from_start else []
    since = recs[-1]["seq"] if recs else 0
    timeout = float(query["timeoutSeconds"]) if (query.get("timeoutSeconds") or "").isdigit() else 1800.0
    deadline = time.monotonic() + timeout

    def stream() -> Iterator[bytes]:
        seq = since
        while not api.stopping() and time.monotonic() < deadline:
            made, seq = _timeline(api, t, query, seq)
            for ev in made:
                obj = _event_table([ev], ev["metadata"]["resourceVersion"], accept, query) \
                    if tables.wants_table(accept) else ev
                yield json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"
            time.sleep(watch.POLL)
    return Response(200, None, JSON, stream=stream())


def _events_v1(ev: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": ev["metadata"],
            "eventTime": None, "reason": ev["reason"], "note": ev["message"], "type": ev["type"],
            "regarding": ev["involvedObject"], "reportingController": ev["reportingComponent"],
            "reportingInstance": ev["reportingInstance"], "deprecatedFirstTimestamp": ev["firstTimestamp"],
            "deprecatedLastTimestamp": ev["lastTimestamp"], "deprecatedCount": 1}


def _event_table(items: list[dict[str, Any]], rv: str, accept: str, query: dict[str, str]) -> dict[str, Any]:
    """kubectl get events' columns (printers.go printEvent): LAST SEEN, TYPE, REASON, OBJECT, MESSAGE."""
    from netsim.printers import age
    cols = [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1), ("Source", 1),
            ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]
    rows = []
    for ev in items:
        io = ev.get("involvedObject") or ev.get("regarding") or {}
        src = ev.get("source") or {}
        obj = f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}"
        last = {"metadata": {"creationTimestamp": ev.get("lastTimestamp") or ev["metadata"].get("creationTimestamp")}}
        first = {"metadata": {"creationTimestamp": ev.get("firstTimestamp") or ev["metadata"].get("creationTimestamp")}}
        include = query.get("includeObject") or "Metadata"
        rows.append({"cells": [age(last), ev.get("type", ""), ev.get("reason", ""), obj,
                               io.get("fieldPath", ""), ", ".join(x for x in (src.get("component"), src.get("host")) if x),
                               ev.get("message") or ev.get("note", ""), age(first), ev.get("count", 1),
                               ev["metadata"]["name"]],
                     "object": None if include == "None" else ev if include == "Object" else
                     {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": ev["metadata"]}})
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{tables.table_version(accept)}",
            "metadata": {"resourceVersion": rv},
            "columnDefinitions": [{"name": n, "type": "string", "format": "", "description": "", "priority": p}
                                  for n, p in cols], "rows": rows}
