"""The API server over real HTTPS on loopback, on a store file of its own (no cluster, no root): client
certificates and tokens, discovery by Accept, Tables, chunked watches with bookmarks, pods/log."""

from __future__ import annotations

import http.client
import json
import os
import ssl

import pytest

from netsim.apiserver import certs, discovery
from netsim.apiserver.endpoint import Endpoint, free_port
from netsim.apiserver.server import ApiServer
from netsim.controlplane.admission import admit
from netsim.daemon import bootstrap_objects, normalise
from netsim.model.cluster import default_cluster
from netsim.store import SQLiteStore


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("NETSIM_WATCH_BOOKMARK_INTERVAL", "0.3")
    spec = default_cluster("u")
    db = str(tmp_path / "store.db")
    store = SQLiteStore(db)
    with store.transaction() as tx:
        tx.apply(admit(normalise(bootstrap_objects(spec), "<bootstrap>"), spec, [], []))
    store.close()
    pki = certs.make_pki(str(tmp_path / "pki"), service_ip="10.96.0.1", dns_domain="cluster.local")
    srv = ApiServer(Endpoint("u", free_port(), pki), spec, db)
    srv.start()
    yield srv
    srv.stop()


def conn(srv: ApiServer, *, cert: bool = True) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=srv.endpoint.pki.ca_crt)
    if cert:
        ctx.load_cert_chain(srv.endpoint.pki.admin_crt, srv.endpoint.pki.admin_key)
    return http.client.HTTPSConnection("127.0.0.1", srv.endpoint.port, context=ctx, timeout=10)


def call(c: http.client.HTTPSConnection, method: str, path: str, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = c.getresponse()
    raw = r.read()
    return r.status, r.getheader("Content-Type"), raw


def test_authentication_and_keep_alive(server):
    c = conn(server, cert=False)
    status, _, body = call(c, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "x"}})
    assert status == 401 and json.loads(body)["reason"] == "Unauthorized"
    token = server.endpoint.pki.read("token").decode().strip()
    status, _, body = call(c, "GET", "/version", headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["minor"] == "32"
    c = conn(server)
    for _ in range(3):  # one connection, several requests (bodies read even when refused)
        assert call(c, "GET", "/healthz")[2] == b"ok"
        assert call(c, "POST", "/api/v1/namespaces/default/nope", {"a": 1})[0] == 404
    assert call(c, "PUT", "/api/v1/namespaces/default/configmaps")[0] == 405
    assert call(c, "POST", "/api/v1/configmaps", {"metadata": {"name": "x"}})[0] == 405  # no namespace
    assert call(c, "GET", "/api/v1/configmaps/x")[0] == 404
    assert call(c, "GET", "/api/v1/configmaps")[0] == 200


def test_discovery_by_accept_and_tables(server):
    c = conn(server)
    status, ctype, body = call(c, "GET", "/apis", headers={"Accept": discovery.AGGREGATED_V2 + ",application/json"})
    assert ctype == discovery.AGGREGATED_V2 and json.loads(body)["kind"] == "APIGroupDiscoveryList"
    assert json.loads(call(c, "GET", "/apis")[2])["kind"] == "APIGroupList"
    status, _, body = call(c, "GET", "/api/v1/namespaces/kube-system/services",
                           headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    table = json.loads(body)
    assert table["kind"] == "Table" and [r["cells"][0] for r in table["rows"]] == ["kube-dns"]
    assert call(c, "GET", "/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0"
                                                             "+protobuf"})[2] == b""
    assert "apis/apps/v1" in json.loads(call(c, "GET", "/openapi/v3")[2])["paths"]


def test_watch_is_a_chunked_stream_with_bookmarks(server):
    c = conn(server)
    _, _, body = call(c, "GET", "/api/v1/namespaces/default/configmaps")
    rv = json.loads(body)["metadata"]["resourceVersion"]
    w = conn(server)
    w.request("GET", f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
                     "&allowWatchBookmarks=true&timeoutSeconds=2")
    r = w.getresponse()
    assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
    status, _, made = call(c, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "w"}})
    assert status == 201
    events = [json.loads(line) for line in r.read().splitlines()]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "w"
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and set(bookmarks[-1]["object"]["metadata"]) == {"resourceVersion"}


def test_pod_log_tail_and_container_choice(server, monkeypatch, tmp_path):
    from netsim import naming
    monkeypatch.setattr(naming, "STATE_ROOT", str(tmp_path / "state"))
    c = conn(server)
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}}
    assert call(c, "POST", "/api/v1/namespaces/default/pods", pod)[0] == 201
    path = naming.container_log("u", "default", "p", "a")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("one\ntwo\nthree\n")
    status, _, body = call(c, "GET", "/api/v1/namespaces/default/pods/p/log")
    assert status == 400 and "choose one of: [a b]" in json.loads(body)["message"]
    status, ctype, body = call(c, "GET", "/api/v1/namespaces/default/pods/p/log?container=a&tailLines=2")
    assert (status, body) == (200, b"two\nthree\n") and ctype.startswith("text/plain")
    status, _, body = call(c, "GET", "/api/v1/namespaces/default/pods/p/log?container=a&previous=true")
    assert status == 400 and "previous terminated container" in json.loads(body)["message"]


def test_malformed_connections_do_not_hurt_the_server(server):
    import socket
    port = server.endpoint.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # not TLS at all
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        s.settimeout(5)
        try:
            s.recv(100)
        except OSError:
            pass
    ctx = ssl.create_default_context(cafile=server.endpoint.pki.ca_crt)
    ctx.load_cert_chain(server.endpoint.pki.admin_crt, server.endpoint.pki.admin_key)
    for junk in (b"\x00\xff garbage\r\n\r\n", b"GET /api/v1/pods HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
                 b"PATCH /api/v1/namespaces/default/configmaps/x HTTP/1.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 5\r\n\r\n{nope", b"GET /api/v1/namespaces/default/pods?watch=true"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(junk)
            s.settimeout(1)
            try:
                s.recv(4096)
            except OSError:
                pass
    c = conn(server)
    assert call(c, "GET", "/readyz")[2] == b"ok"
    assert server.health()["state"] == "running" and server.health()["handlerErrors"] == 0


def test_a_store_locked_past_its_busy_timeout_answers_504_timeout(request, monkeypatch):
    """A writer stuck in another process holds the store's write lock: the API answers 504 reason Timeout
    (apierrors.NewTimeoutError, which clients retry), naming the store; not a 500 for a server bug."""
    import sqlite3
    monkeypatch.setattr(SQLiteStore, "BUSY_TIMEOUT_MS", 300)
    srv = request.getfixturevalue("server")
    holder = sqlite3.connect(srv.store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        c = conn(srv)
        status, _, body = call(c, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "x"}})
        answer = json.loads(body)
        assert status == 504 and answer["reason"] == "Timeout" and answer["code"] == 504, answer
        assert "stayed locked for 0.3 s" in answer["message"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    status, _, _ = call(conn(srv), "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "x"}})
    assert status == 201
