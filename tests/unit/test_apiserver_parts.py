"""The API endpoint's pure parts: PKI, kubeconfig merging, patches, discovery, OpenAPI, Tables, Status."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from netsim.apiserver import certs, discovery, errors, kubeconfig, openapi, patch, tables
from netsim.apiserver.resources import Catalog
from netsim.model.generic import CustomKind


def test_pki_files_are_private_and_name_the_admin_and_the_kubernetes_service(tmp_path):
    pki = certs.make_pki(str(tmp_path / "pki"), service_ip="10.96.0.1", dns_domain="cluster.local")
    assert stat.S_IMODE(os.stat(pki.root).st_mode) == 0o700
    for name in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key", "token"):
        assert stat.S_IMODE(os.stat(pki.path(name)).st_mode) == 0o600, name
    admin = x509.load_pem_x509_certificate(pki.read("admin.crt"))
    user, groups = certs.subject_of(admin.public_bytes(encoding=__import__(
        "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER))
    assert user == "kubernetes-admin" and "system:masters" in groups
    srv = x509.load_pem_x509_certificate(pki.read("apiserver.crt"))
    sans = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.96.0.1"}
    assert {"localhost", "kubernetes.default.svc.cluster.local"} <= set(sans.get_values_for_type(x509.DNSName))


def _config(cluster: str) -> dict:
    return kubeconfig.build(cluster, "https://127.0.0.1:1234", b"CA", b"CERT", b"KEY")


def test_kubeconfig_merge_keeps_other_entries_sets_current_context_and_is_0600(tmp_path):
    path = str(tmp_path / "kube" / "config")
    os.makedirs(os.path.dirname(path))
    theirs = {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
              "clusters": [{"name": "prod", "cluster": {"server": "https://prod"}}],
              "users": [{"name": "prod", "user": {"token": "t"}}],
              "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}]}
    with open(path, "w") as f:
        yaml.safe_dump(theirs, f)
    kubeconfig.merge(_config("a"), path)
    kubeconfig.merge(_config("a"), path)  # again: replaced, not doubled
    doc = yaml.safe_load(Path(path).read_text())
    assert doc["current-context"] == "netsim-a"
    assert [c["name"] for c in doc["clusters"]] == ["prod", "netsim-a"]
    assert doc["users"][0] == theirs["users"][0]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.exists(path + ".lock")
    assert kubeconfig.remove("a", path) is True
    doc = yaml.safe_load(Path(path).read_text())
    assert [c["name"] for c in doc["clusters"]] == ["prod"]
    assert [c["name"] for c in doc["contexts"]] == ["prod"] and doc["current-context"] == ""
    assert kubeconfig.remove("a", path) is False


def test_a_first_kubeconfig_makes_its_directory(tmp_path):
    """A fresh machine has no ~/.kube: `up` makes it (0700), as kubectl and kind do."""
    path = str(tmp_path / "home" / ".kube" / "config")
    assert kubeconfig.merge(_config("a"), path) == path
    assert yaml.safe_load(Path(path).read_text())["current-context"] == "netsim-a"
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_kubeconfig_path_follows_kind_and_kubectl(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert kubeconfig.path_for_merge({"KUBECONFIG": a}) == a
    assert kubeconfig.path_for_merge({"KUBECONFIG": f"{a}{os.pathsep}{b}"}) == b  # none exists: the last
    open(a, "w").close()
    assert kubeconfig.path_for_merge({"KUBECONFIG": f"{a}{os.pathsep}{b}"}) == a  # the first that exists
    assert kubeconfig.path_for_merge({"HOME": "/x"}).endswith(os.path.join(".kube", "config"))


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]},
       "spec": {"containers": [{"name": "app", "image": "x:1", "ports": [{"containerPort": 80}],
                                "env": [{"name": "A", "value": "1"}]},
                               {"name": "side", "image": "y:1"}]}}


def test_strategic_merge_patch_merges_containers_by_name_and_ports_by_container_port():
    out = patch.strategic_merge(POD, {"spec": {"containers": [
        {"name": "app", "image": "x:2", "ports": [{"containerPort": 8080}], "env": [{"name": "B", "value": "2"}]}]},
        "metadata": {"finalizers": ["b"]}}, "Pod")
    app, side = out["spec"]["containers"]
    assert app["image"] == "x:2" and side == POD["spec"]["containers"][1]
    assert [p["containerPort"] for p in app["ports"]] == [80, 8080]
    assert [e["name"] for e in app["env"]] == ["A", "B"]
    assert out["metadata"]["finalizers"] == ["a", "b"]
    # a merge patch replaces the whole list instead
    assert len(patch.merge_patch(POD, {"spec": {"containers": [{"name": "app"}]}})["spec"]["containers"]) == 1


def test_strategic_merge_patch_directives():
    out = patch.strategic_merge(POD, {"spec": {"containers": [{"name": "side", "$patch": "delete"}],
                                               "$setElementOrder/containers": [{"name": "app"}]}}, "Pod")
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    out = patch.strategic_merge(POD, {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                                               "containers": [{"name": "app", "image": "z"}]}}, "Pod")
    assert [c["name"] for c in out["spec"]["containers"]] == ["side", "app"]
    out = patch.strategic_merge({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
                                {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = patch.strategic_merge(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "Pod")
    assert out["metadata"]["finalizers"] == []
    out = patch.strategic_merge(POD, {"spec": {"containers": None}}, "Pod")
    assert "containers" not in out["spec"]
    with pytest.raises(errors.ApiError) as e:
        patch.apply_patch(POD, {}, "application/strategic-merge-patch+json", "Widget", custom=True)
    assert e.value.code == 415


def test_json_patch_operations_and_failed_test():
    doc = {"a": {"b": [1, 2]}, "c": 1}
    out = patch.json_patch(doc, [{"op": "add", "path": "/a/b/-", "value": 3}, {"op": "replace", "path": "/c", "value": 2},
                                 {"op": "remove", "path": "/a/b/0"}, {"op": "copy", "from": "/c", "path": "/d"},
                                 {"op": "move", "from": "/d", "path": "/e"}, {"op": "test", "path": "/e", "value": 2}])
    assert out == {"a": {"b": [2, 3]}, "c": 2, "e": 2} and doc == {"a": {"b": [1, 2]}, "c": 1}
    with pytest.raises(patch.PatchError):
        patch.json_patch(doc, [{"op": "test", "path": "/c", "value": 9}])
    with pytest.raises(patch.PatchError):
        patch.json_patch(doc, [{"op": "remove", "path": "/nope"}])


def test_discovery_documents():
    cat = Catalog({"Widget": CustomKind("Widget", "example.com", ("v1",), "widgets", "widget", True, ("wd",))})
    assert discovery.aggregated_version("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                                        "application/json") == "v2"
    assert discovery.aggregated_version("application/json") is None
    core = discovery.resource_list(cat, "", "v1")
    names = {r["name"]: r for r in core["resources"]}
    assert names["pods"]["shortNames"] == ["po"] and "watch" in names["pods"]["verbs"]
    assert "pods/status" in names and names["namespaces"]["namespaced"] is False
    apps = discovery.resource_list(cat, "apps", "v1")
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["kind"]) == ("autoscaling", "Scale")
    groups = discovery.group_list(cat)
    assert {"name": "example.com", "versions": [{"groupVersion": "example.com/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "example.com/v1", "version": "v1"}} in groups["groups"]
    agg = discovery.aggregated(cat, legacy=False)
    assert agg["kind"] == "APIGroupDiscoveryList" and "" not in {i["metadata"]["name"] for i in agg["items"]}
    widget = next(i for i in agg["items"] if i["metadata"]["name"] == "example.com")
    assert widget["versions"][0]["resources"][0]["resource"] == "widgets"


def test_openapi_v3_tells_kubectl_that_the_server_validates_fields():
    cat = Catalog()
    index = openapi.v3_index(cat)
    assert "apis/apps/v1" in index["paths"] and "api/v1" in index["paths"]
    doc = openapi.v3_group(cat, "apps", "v1")
    op = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in {p["name"] for p in op["parameters"]}
    # not advertised, so kubectl computes strategic merge patches from its own types
    assert "application/strategic-merge-patch+json" not in op["requestBody"]["content"]


def test_table_has_kubectl_columns_with_wide_ones_at_priority_1():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default",
                                                           "creationTimestamp": "2024-01-01T00:00:00Z"},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
           "status": {"phase": "Running", "podIP": "10.244.0.2"}}
    t = tables.table("Pod", [pod], resource_version="7")
    assert [(c["name"].upper(), c["priority"]) for c in t["columnDefinitions"]][:3] == [
        ("NAME", 0), ("READY", 0), ("STATUS", 0)]
    assert ("IP", 1) in [(c["name"].upper(), c["priority"]) for c in t["columnDefinitions"]]
    assert t["rows"][0]["cells"][0] == "p" and t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    svc_cols = [c["name"].upper() for c in tables.table("Service", [], resource_version="1")["columnDefinitions"]]
    assert "ENDPOINTS" not in svc_cols
    assert tables.wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")


def test_status_objects_carry_reason_code_and_causes():
    e = errors.invalid("Pod", "", "p", [{"message": "Required value", "field": "spec.containers"}])
    st = e.status()
    assert (st["kind"], st["code"], st["reason"]) == ("Status", 422, "Invalid")
    assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "message": "Required value",
                                        "field": "spec.containers"}]
    assert st["message"] == 'Pod "p" is invalid: spec.containers: Required value'
    assert errors.not_found("deployments", "apps", "w").status()["message"] == 'deployments.apps "w" not found'
    assert errors.expired("too old").code == 410 and errors.unauthorized().code == 401


def test_websocket_handshake_and_frames():
    from netsim.apiserver import execws
    assert execws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3
    assert execws.choose_protocol("v4.channel.k8s.io, v5.channel.k8s.io") == "v5.channel.k8s.io"
    assert execws.choose_protocol("channel.k8s.io") is None
    big = b"x" * 70000

    class Wire:
        def __init__(self, data: bytes):
            self.data = data

        def recv(self, n: int) -> bytes:
            out, self.data = self.data[:n], self.data[n:]
            return out
    for payload in (b"\x01hi", b"y" * 300, big):
        assert execws.read_frame(Wire(execws.frame(payload))) == (execws.OP_BIN, payload)
    masked = bytes([0x82, 0x80 | 3]) + b"\x01\x02\x03\x04" + bytes(b ^ m for b, m in zip(b"\x00ab", b"\x01\x02\x03"))
    assert execws.read_frame(Wire(masked)) == (execws.OP_BIN, b"\x00ab")
    st = execws.exit_status(3, ["sh", "-c", "exit 3"])
    assert st["reason"] == "NonZeroExitCode" and st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_a_stale_kubeconfig_lock_is_broken_and_a_broken_kubeconfig_does_not_stop_up(tmp_path, monkeypatch):
    path = str(tmp_path / "config")
    lock = path + ".lock"
    open(lock, "w").close()
    os.utime(lock, (0, 0))  # left by a process that died long ago
    kubeconfig.merge(_config("a"), path)
    assert not os.path.exists(lock) and "netsim-a" in Path(path).read_text()
    from netsim import naming
    from netsim.apiserver import endpoint
    monkeypatch.setattr(naming, "STATE_ROOT", str(tmp_path / "state"))
    os.makedirs(naming.state_dir("b"))
    bad = tmp_path / "bad"
    bad.write_text("clusters: [unclosed")
    monkeypatch.setenv("KUBECONFIG", str(bad))
    ep = endpoint.prepare("b", "10.96.0.0/12", "cluster.local")
    info = endpoint.describe("b")
    assert ep.port and info["kubeconfig"] is None and str(bad) in info["kubeconfigError"]
    assert bad.read_text() == "clusters: [unclosed"


# What kubectl 1.32 sent for `kubectl create secret generic pbsec --from-literal=user=admin` (captured).
KUBECTL_SECRET = bytes.fromhex(
    "6b3873000a0c0a027631120653656372657412280a150a05706273656312001a0022002a00320038004200120d0a0475736572"
    "120561646d696e1a001a002200")


def test_protobuf_bodies_of_the_kinds_kubectl_create_sends():
    from netsim.apiserver import protobuf
    assert protobuf.decode(KUBECTL_SECRET) == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pbsec"},
                                               "data": {"user": "YWRtaW4="}}

    def field(num: int, payload: bytes) -> bytes:
        return bytes([num << 3 | 2, len(payload)]) + payload
    cm = field(1, field(1, b"cm") + field(3, b"ns") + field(11, field(1, b"k") + field(2, b"v"))) + \
        field(2, field(1, b"a") + field(2, b"b"))
    body = protobuf.MAGIC + field(1, field(1, b"v1") + field(2, b"ConfigMap")) + field(2, cm)
    assert protobuf.decode(body) == {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"},
                                     "metadata": {"name": "cm", "namespace": "ns", "labels": {"k": "v"}}}
    other = protobuf.MAGIC + field(1, field(1, b"apps/v1") + field(2, b"Deployment")) + field(2, b"")
    with pytest.raises(errors.ApiError) as e:
        protobuf.decode(other)
    assert e.value.code == 415
    with pytest.raises(errors.ApiError) as e:
        protobuf.decode(protobuf.MAGIC + b"\x0a\xff")
    assert e.value.code == 400


# -- SPDY/3.1 (netsim.apiserver.spdy) ----------------------------------------------------------------
class _Pipe:
    """A transport fed with what a client would send; collects what the server sends."""

    def __init__(self, incoming: bytes):
        self.incoming, self.out = [incoming], b""

    def recv(self) -> bytes:
        return self.incoming.pop(0) if self.incoming else b""

    def send(self, data: bytes) -> None:
        self.out += data


def _client_frames(*frames: bytes) -> bytes:
    return b"".join(frames)


def test_spdy_session_replies_to_streams_and_carries_data():
    import struct
    import zlib

    from netsim.apiserver import spdy
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, zdict=spdy.DICTIONARY)

    def syn(sid: int, headers: dict) -> bytes:
        block = deflate.compress(spdy.encode_headers(headers)) + deflate.flush(zlib.Z_SYNC_FLUSH)
        return spdy.control(spdy.SYN_STREAM, 0, struct.pack("!IIH", sid, 0, 0) + block)

    wire = _client_frames(syn(1, {"streamType": "data", "port": "80"}), spdy.data_frame(1, b"hello"),
                          spdy.data_frame(1, b"", fin=True), spdy.control(spdy.PING, 0, struct.pack("!I", 7)),
                          spdy.control(spdy.WINDOW_UPDATE, 0, struct.pack("!II", 1, 100)))
    pipe = _Pipe(wire)
    session = spdy.Session(pipe)
    seen = []
    session.run(seen.append)
    (st,) = seen
    assert st.headers == {"streamtype": "data", "port": "80"}  # names lower-cased, as spdystream reads them
    assert st.read() == b"hello" and st.read() == b""
    # the server's answer: a SYN_REPLY for stream 1 whose header block inflates with the dictionary, then the
    # PING echoed
    head = pipe.out[:8]
    assert head[:4] == bytes([0x80, 3, 0, spdy.SYN_REPLY])
    length = int.from_bytes(head[5:8], "big")
    payload = pipe.out[8:8 + length]
    assert int.from_bytes(payload[:4], "big") == 1
    assert zlib.decompressobj(15, zdict=spdy.DICTIONARY).decompress(payload[4:]) == b"\0\0\0\0"
    assert pipe.out[8 + length:] == spdy.control(spdy.PING, 0, struct.pack("!I", 7))
    st.write(b"x" * (spdy.MAX_DATA + 1))
    st.close()
    tail = pipe.out[8 + length + 12:]
    assert tail[:8] == struct.pack("!II", 1, spdy.MAX_DATA) and tail.endswith(struct.pack("!II", 1, 1 << 24))


def test_portforward_ports_parameter_as_the_kubelet_parses_it():
    import pytest

    from netsim.apiserver import errors, portforward
    assert portforward.ports_of([("ports", "80,8080"), ("ports", "9000")]) == [80, 8080, 9000]
    for bad, msg in (([], 'query parameter "port" is required'), ([("ports", "x")], 'unable to parse "x"'),
                     ([("ports", "0")], 'port "0" must be > 0'), ([("ports", "70000")], 'unable to parse "70000"')):
        with pytest.raises(errors.ApiError) as e:
            portforward.ports_of(bad)
        assert e.value.code == 400 and msg in str(e.value.status()["message"])


# -- log line times (netsim.apiserver.logtimes) --------------------------------------------------------
def test_log_clock_records_line_times_and_follows_a_restart(tmp_path):
    import time

    from netsim.apiserver import logs, logtimes
    d = tmp_path / "logs"
    d.mkdir()
    (d / "old.log").write_bytes(b"before\n")  # written while nobody watched: its mtime at most
    clock = logtimes.LogClock(str(d))
    clock.start()
    try:
        path = d / "p_c.log"
        with open(path, "ab", buffering=0) as f:
            t0 = time.time()
            f.write(b"one\ntw")
            time.sleep(0.3)
            f.write(b"o\n")
            t1 = time.time()
            deadline = time.monotonic() + 5
            while len(logtimes.load(str(path))[0]) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        (one, ta), (two, tb) = logtimes.line_times(str(path), path.read_bytes())
        assert (one, two) == (b"one\n", b"two\n") and t0 <= ta < tb <= t1 + 1 and tb - ta >= 0.25
        stamped = logs.read(str(path), {"timestamps": "true", "tailLines": "1"})
        assert stamped == logtimes.rfc3339nano(tb).encode() + b" two\n"
        assert logs.read(str(path), {"sinceTime": logtimes.rfc3339nano(tb - 0.1)}) == b"two\n"
        assert logs.read(str(d / "old.log"), {"timestamps": "true"}).endswith(b"Z before\n")
        # a restart: the kubelet moves the log aside; its times go with it
        path.rename(d / "p_c.log.previous")
        deadline = time.monotonic() + 5
        while not (d / "p_c.log.previous.times").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(logtimes.load(str(d / "p_c.log.previous"))[0]) == 2 and not (d / "p_c.log.times").exists()
    finally:
        clock.stop()


def test_rfc3339nano_as_go_formats_it():
    from netsim.apiserver.logtimes import rfc3339nano
    assert rfc3339nano(1_700_000_000.0) == "2023-11-14T22:13:20Z"
    assert rfc3339nano(1_700_000_000.5) == "2023-11-14T22:13:20.5Z"
    assert rfc3339nano(1_700_000_000.123456789).startswith("2023-11-14T22:13:20.1234567")


def test_log_options_validation():
    import pytest

    from netsim.apiserver import errors, logs
    for q in ({"sinceSeconds": "5", "sinceTime": "2024-01-01T00:00:00Z"}, {"sinceSeconds": "0"}):
        with pytest.raises(errors.ApiError) as e:
            logs.check_query(q)
        assert e.value.code == 422
