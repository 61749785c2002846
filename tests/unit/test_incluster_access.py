"""In-cluster API access without root: ServiceAccount tokens (issued, verified, refused), the API server
accepting them over HTTPS, the `kubernetes` Service's EndpointSlice, and the kube-api-access volume the
kubelet mounts (automount rules)."""

from __future__ import annotations

import http.client
import json
import os
import ssl

import pytest

from netsim import naming
from netsim.apiserver import certs, satoken
from netsim.apiserver.endpoint import ApiEndpoint, free_port
from netsim.apiserver.server import ApiServer
from netsim.controlplane.admission import admit
from netsim.controlplane.endpointslice import reconcile_service_slices
from netsim.controlplane.state import Snapshot
from netsim.daemon import bootstrap_objects, normalise
from netsim.model.cluster import default_cluster
from netsim.node.pod_setup import PodSetup, should_automount
from netsim.objcache import decode_stored
from netsim.store import SQLiteStore

POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u-1"}, "spec": {"nodeName": "n1"}}


def _lookup(objs):
    return lambda kind, ns, name: objs.get((kind, ns, name))


def test_token_round_trip_and_refusals(tmp_path):
    key = satoken.load_key(str(tmp_path))
    assert oct(os.stat(tmp_path / "sa.key").st_mode & 0o777) == "0o600"
    assert satoken.load_key(str(tmp_path)).private_numbers() == key.private_numbers()  # made once
    b = satoken.Binding("default", "default", "", "p", "u-1", "n1")
    tok = satoken.issue(key, "cluster.local", b, now=1000)
    store = {("Pod", "default", "p"): POD}
    user, groups = satoken.verify(key, "cluster.local", tok, _lookup(store), now=2000)
    assert user == "system:serviceaccount:default:default"
    assert "system:serviceaccounts:default" in groups
    claims = json.loads(satoken._unb64(tok.split(".")[1]))
    assert claims["exp"] - claims["iat"] == satoken.EXTENDED_SECONDS
    assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": "u-1"}
    # tampered, another key, another domain, expired, pod gone or replaced: refused
    head, body, sig = tok.split(".")
    forged = satoken._b64(json.dumps({**claims, "sub": "system:serviceaccount:kube-system:admin"}).encode())
    assert satoken.verify(key, "cluster.local", f"{head}.{forged}.{sig}", _lookup(store), now=2000) is None
    os.makedirs(tmp_path / "x")
    other = satoken.load_key(str(tmp_path / "x"))
    assert satoken.verify(other, "cluster.local", tok, _lookup(store), now=2000) is None
    assert satoken.verify(key, "example.org", tok, _lookup(store), now=2000) is None
    assert satoken.verify(key, "cluster.local", tok, _lookup(store), now=1000 + satoken.EXTENDED_SECONDS) is None
    assert satoken.verify(key, "cluster.local", tok, _lookup({}), now=2000) is None
    replaced = {("Pod", "default", "p"): {"metadata": {"name": "p", "uid": "u-2"}}}
    assert satoken.verify(key, "cluster.local", tok, _lookup(replaced), now=2000) is None
    # a ServiceAccount recreated since (another UID) invalidates tokens naming the old one
    b2 = satoken.Binding("default", "default", "sa-1", "p", "u-1")
    tok2 = satoken.issue(key, "cluster.local", b2, now=1000)
    sa = {("ServiceAccount", "default", "default"): {"metadata": {"uid": "sa-2"}}, **store}
    assert satoken.verify(key, "cluster.local", tok2, _lookup(sa), now=2000) is None
    assert satoken.verify(key, "cluster.local", "eyJ.not.atoken", _lookup(store)) is None


def test_kubernetes_service_endpointslice_left_alone_by_the_controller():
    spec = default_cluster("u")
    docs = normalise(bootstrap_objects(spec), "<bootstrap>")
    sl = next(d for d in docs if d["kind"] == "EndpointSlice")
    assert sl["metadata"]["name"] == "kubernetes"
    assert sl["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
    assert sl["endpoints"] == [{"addresses": [spec.node_ip(0)], "conditions": {"ready": True}}]
    assert sl["ports"] == [{"name": "https", "protocol": "TCP", "port": 6443}]
    svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "kubernetes")

    assert reconcile_service_slices(decode_stored(svc), Snapshot({"EndpointSlice": [sl]}), None) == []  # type: ignore[arg-type]


def test_server_certificate_names_the_node_ip(tmp_path):
    pki = certs.make_pki(str(tmp_path / "pki"), service_ip="10.96.0.1", dns_domain="cluster.local",
                         advertise_ip="172.18.0.2")
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(pki.read("apiserver.crt"))
    ips = {str(i) for i in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
           .get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", "10.96.0.1", "172.18.0.2"} <= ips
    assert os.path.exists(pki.path("sa.key"))


@pytest.fixture
def server(tmp_path):
    spec = default_cluster("u")
    db = str(tmp_path / "store.db")
    store = SQLiteStore(db)
    with store.transaction() as tx:
        tx.apply(admit(normalise(bootstrap_objects(spec), "<bootstrap>"), spec, [], []))
    store.close()
    pki = certs.make_pki(str(tmp_path / "pki"), service_ip="10.96.0.1", dns_domain="cluster.local")
    srv = ApiServer(ApiEndpoint("u", free_port(), pki), spec, db)
    srv.start()
    yield srv
    srv.stop()


def _call(srv, method, path, *, token=None, cert=False, body=None):
    ctx = ssl.create_default_context(cafile=srv.endpoint.pki.ca_crt)
    if cert:
        ctx.load_cert_chain(srv.endpoint.pki.admin_crt, srv.endpoint.pki.admin_key)
    c = http.client.HTTPSConnection("127.0.0.1", srv.endpoint.port, context=ctx, timeout=10)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    c.request(method, path, body=json.dumps(body).encode() if body else None, headers=headers)
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"{}")


def test_api_server_accepts_a_pods_service_account_token(server):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    status, created = _call(server, "POST", "/api/v1/namespaces/default/pods", cert=True, body=pod)
    assert status == 201
    key = satoken.load_key(server.endpoint.pki.root)
    tok = satoken.issue(key, "cluster.local", satoken.Binding("default", "default", "", "p",
                                                              created["metadata"]["uid"]))
    status, listed = _call(server, "GET", "/api/v1/namespaces/default/pods", token=tok)
    assert status == 200 and [p["metadata"]["name"] for p in listed["items"]] == ["p"]
    assert _call(server, "GET", "/api/v1/namespaces/default/pods")[0] == 401
    assert _call(server, "GET", "/api/v1/namespaces/default/pods", token=tok[:-4] + "AAAA")[0] == 401
    # the bound pod deleted: its token is no longer accepted
    assert _call(server, "DELETE", "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0", cert=True)[0] == 200
    assert _call(server, "GET", "/api/v1/namespaces/default/pods", token=tok)[0] == 401


def test_should_automount_rules():
    assert should_automount({"spec": {}}, None)
    assert not should_automount({"spec": {}}, {"automountServiceAccountToken": False})
    assert should_automount({"spec": {"automountServiceAccountToken": True}}, {"automountServiceAccountToken": False})
    assert not should_automount({"spec": {"automountServiceAccountToken": False}}, None)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_kubelet_mounts_kube_api_access(tmp_path, monkeypatch):
    monkeypatch.setattr(naming, "STATE_ROOT", str(tmp_path))
    pki = certs.make_pki(os.path.join(str(tmp_path), "c", "pki"), service_ip="10.96.0.1", dns_domain="cluster.local")
    objects: dict = {}
    ps = PodSetup("c", "cluster.local", lambda kind, ns=None: [], lambda kind, ns, name: objects.get((kind, ns, name)))
    pod = {"metadata": {"name": "p", "namespace": "team", "uid": "u-9"},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "command": ["sleep", "1"]}]}}
    ctr = pod["spec"]["containers"][0]
    cfg = ps.container_config(pod, ctr, ps.context(pod, {}, "172.18.0.2"), "n1")
    [m] = [m for m in cfg.mounts if m["dst"] == satoken.MOUNT_PATH]
    assert m["ro"] and os.path.basename(m["src"]).startswith("kube-api-access-")
    files = {n: _read(os.path.join(m["src"], n)) for n in ("token", "ca.crt", "namespace")}
    assert files["namespace"] == b"team" and files["ca.crt"] == pki.read("ca.crt")
    user, _ = satoken.verify(satoken.load_key(pki.root), "cluster.local", files["token"].decode(),
                             lambda k, ns, n: pod if (k, ns, n) == ("Pod", "team", "p") else None)
    assert user == "system:serviceaccount:team:default"
    # the same token on every pass (no rewrite), none when automount is off on the ServiceAccount
    again = ps.container_config(pod, ctr, ps.context(pod, {}, "172.18.0.2"), "n1")
    assert _read(os.path.join(again.mounts[0]["src"], "token")) == files["token"]
    objects[("ServiceAccount", "team", "default")] = {"metadata": {"uid": "s"}, "automountServiceAccountToken": False}
    off = ps.container_config(pod, ctr, ps.context(pod, {}, "172.18.0.2"), "n1")
    assert not [m for m in off.mounts if m["dst"] == satoken.MOUNT_PATH]
