"""A container's environment, command and args as the kubelet makes them (netsim/node/pod_env.py), the
managed /etc/hosts (hosts_file.py) and the atomic writer's layout (atomic_writer.py) and volume payloads."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.node import atomic_writer
from netsim.node.atomic_writer import FileProjection
from netsim.node.hosts_file import pod_hosts_content
from netsim.node.pod_env import (
    PodContext,
    container_env,
    container_process,
    expand,
    in_image,
    mapping_for,
    parse_quantity,
    resource_value,
)
from netsim.node.security import ContainerConfigError
from netsim.node.volumes import VolumeError, container_mounts, payload

POD = {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1", "labels": {"app": "web", "tier": "fe"},
                    "annotations": {"note": 'say "hi"'}},
       "spec": {"nodeName": "node-2", "serviceAccountName": "sa",
                "containers": [{"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                                                           "requests": {"cpu": "250m"}}}]},
       "status": {"podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}], "hostIP": "172.18.0.3"}}
CM = {"metadata": {"name": "cfg"}, "data": {"mode": "fast", "greeting": "hello", "bad-key": "x", "1st": "y"}}
SECRET = {"metadata": {"name": "creds"}, "data": {"password": base64.b64encode(b"s3cret").decode()}}


def ctx(**kw) -> PodContext:
    base = dict(pod=POD, configmaps={"cfg": CM}, secrets={"creds": SECRET},
                service_env={"DB_SERVICE_HOST": "10.96.0.20"}, host_ip="172.18.0.3",
                allocatable={"cpu": "2", "memory": "4Gi"})
    base.update(kw)
    return PodContext(**base)


@pytest.mark.parametrize("text,want", [
    ("$(A)", "a"), ("x$(A)y", "xay"), ("$$(A)", "$(A)"), ("$$$(A)", "$a"), ("$(MISSING)", "$(MISSING)"),
    ("$(A", "$(A"), ("$A", "$A"), ("a$", "a$"), ("$()", "$()"), ("$(A)$(B)", "ab"), ("$$", "$"),
    ("no refs", "no refs"),
])
def test_expansion_follows_the_kubelets_rules(text, want):
    assert expand(text, mapping_for({"A": "a", "B": "b"})) == want


def test_env_order_value_from_env_from_and_service_variables():
    c = {"name": "c",
         "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "creds"}, "prefix": "S_"}],
         "env": [{"name": "GREETING", "value": "$(greeting) world"},
                 {"name": "LATER", "value": "$(EARLIER)"},
                 {"name": "EARLIER", "value": "e"},
                 {"name": "DB", "value": "$(DB_SERVICE_HOST):5432"},
                 {"name": "ESC", "value": "$$(greeting)"},
                 {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                 {"name": "LIT", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                 {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                 {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                 {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                 {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
                 {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                 {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                 {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                 {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}}]}
    c2 = ctx()
    env = container_env(c2, c)
    assert env["mode"] == "fast" and env["S_password"] == "s3cret"
    assert env["GREETING"] == "hello world"
    assert env["LATER"] == "$(EARLIER)"  # only what is defined before is expanded
    assert env["DB"] == "10.96.0.20:5432" and env["DB_SERVICE_HOST"] == "10.96.0.20"
    assert env["ESC"] == "$(greeting)"
    assert (env["PW"], env["LIT"], env["POD"], env["NS"], env["APP"]) == ("s3cret", "fast", "web-0", "shop", "web")
    assert (env["NODE"], env["SA"], env["IP"], env["IPS"], env["HOST"]) == (
        "node-2", "sa", "10.244.1.5", "10.244.1.5", "172.18.0.3")
    assert (env["CPU"], env["MEM"]) == ("500", "128")
    assert "OPT" not in env
    # "bad-key" and "1st" are valid under the relaxed rules; only '=' or non-printables are refused
    assert c2.events == []


def test_env_from_skips_invalid_names_with_the_kubelets_event():
    c2 = ctx(configmaps={"cfg": {"metadata": {"name": "cfg"}, "data": {"a=b": "1", "ok": "2"}}})
    env = container_env(c2, {"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]})
    assert env["ok"] == "2" and "a=b" not in env
    assert c2.events == [("InvalidEnvironmentVariableNames", "Keys [a=b] from the EnvFrom configMap shop/cfg were "
                          "skipped since they are considered invalid environment variable names.")]


@pytest.mark.parametrize("env,message", [
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}], 'configmap "nope" not found'),
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}],
     "couldn't find key k in ConfigMap shop/cfg"),
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}], 'secret "nope" not found'),
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}],
     "couldn't find key k in Secret shop/creds"),
])
def test_missing_sources_are_create_container_config_errors(env, message):
    with pytest.raises(ContainerConfigError) as e:
        container_env(ctx(), {"name": "c", "env": env})
    assert str(e.value) == message and e.value.reason == "CreateContainerConfigError"
    with pytest.raises(ContainerConfigError, match='configmap "gone" not found'):
        container_env(ctx(), {"name": "c", "envFrom": [{"configMapRef": {"name": "gone"}}]})
    assert container_env(ctx(), {"name": "c", "envFrom": [{"secretRef": {"name": "gone", "optional": True}}]})


def test_command_and_args_are_expanded_with_the_final_environment():
    argv, env = container_process(ctx(), {"name": "c", "command": ["sh", "-c", "echo $(GREETING) $$(X) $(NONE)"],
                                          "args": ["$(DB_SERVICE_HOST)"],
                                          "env": [{"name": "GREETING", "value": "hi"}]})
    assert argv == ["sh", "-c", "echo hi $(X) $(NONE)", "10.96.0.20"]
    argv, _ = container_process(ctx(), {"name": "c", "args": ["--port=$(A)"]})
    assert argv == []  # no command: the image's entrypoint, played by the workload server


@pytest.mark.parametrize("container,image", [
    ({"command": ["./podinfo", "--port=9898"]}, True),  # podinfo's Deployment: a program of the image
    ({"command": ["bin/server"], "workingDir": "/app"}, True),
    ({"command": ["./run.sh"], "workingDir": "/scripts",  # a ConfigMap mounted where it is looked up
      "volumeMounts": [{"name": "s", "mountPath": "/scripts"}]}, False),
    ({"command": ["./tools/run.sh"], "workingDir": "/",
      "volumeMounts": [{"name": "s", "mountPath": "/tools/"}]}, False),
    ({"command": ["./run.sh"], "workingDir": "/srv", "volumeMounts": [{"name": "s", "mountPath": "/scripts"}]}, True),
    ({"command": ["../x"], "workingDir": "/a/b", "volumeMounts": [{"name": "s", "mountPath": "/a"}]}, False),
    ({"command": ["/nonexistent/netsim-no-such-binary"]}, False),  # looked up on this machine (StartError)
    ({"command": ["sh", "-c", "./x"]}, False),
    ({"command": ["$(APP)/server"]}, False),
    ({"args": ["./x"]}, False),
    ({}, False),
])
def test_a_command_naming_the_images_own_program_is_played(container, image):
    """A relative program path is the image's (its WORKDIR is not on this machine): played, no process."""
    c = {"name": "c", **container}
    assert in_image(c) is image
    argv, _ = container_process(ctx(), c)
    assert (argv == []) is (image or not container.get("command"))


def test_resource_field_ref_defaults_and_divisors():
    assert parse_quantity("128Mi") == 128 * 2**20 and parse_quantity("500m") * 1000 == 500
    assert resource_value(POD, "c", "limits.cpu", None, {}) == "1"  # 0.5 rounded up
    assert resource_value(POD, "c", "requests.cpu", "1m", {}) == "250"
    assert resource_value(POD, "c", "limits.memory", None, {}) == str(128 * 2**20)
    pod = {**POD, "spec": {**POD["spec"], "containers": [{"name": "c"}]}}
    assert resource_value(pod, "c", "limits.cpu", None, {"cpu": "2"}) == "2"  # the node's allocatable
    assert resource_value(pod, "c", "limits.memory", "1Gi", {"memory": "4Gi"}) == "4"


def _typed(pod: dict) -> Any:
    c = {"name": "c", "image": "x"}
    return parse_object({"apiVersion": "v1", "kind": "Pod", **pod, "spec": {**pod["spec"], "containers": [c]}},
                        Source("t"))


def test_managed_hosts_file():
    text = pod_hosts_content(_typed(POD), ["10.244.1.5"], "cluster.local")
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost")
    assert text.endswith("fe00::2\tip6-allrouters\n10.244.1.5\tweb-0\n")
    pod = {**POD, "spec": {**POD["spec"], "hostname": "h", "subdomain": "sub",
                           "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a.example", "b.example"]}]}}
    text = pod_hosts_content(_typed(pod), ["10.244.1.5"], "cluster.local")
    assert "10.244.1.5\th.sub.shop.svc.cluster.local\th\n" in text
    assert text.endswith("\n# Entries added by HostAliases.\n1.2.3.4\ta.example\n1.2.3.4\tb.example\n")


def test_atomic_writer_layout_update_and_removal(tmp_path):
    target = str(tmp_path / "vol")
    assert atomic_writer.write(target, {"a": FileProjection(b"1"), "dir/b": FileProjection(b"2", 0o600)})
    first = os.readlink(os.path.join(target, "..data"))
    assert first.startswith("..") and os.readlink(os.path.join(target, "a")) == "..data/a"
    assert Path(target, "dir", "b").read_text() == "2"
    assert os.stat(os.path.join(target, "dir", "b")).st_mode & 0o777 == 0o600
    assert not atomic_writer.write(target, {"a": FileProjection(b"1"), "dir/b": FileProjection(b"2", 0o600)})
    assert atomic_writer.write(target, {"a": FileProjection(b"one")})
    second = os.readlink(os.path.join(target, "..data"))
    assert second != first and not os.path.exists(os.path.join(target, first))
    assert Path(target, "a").read_text() == "one" and not os.path.lexists(os.path.join(target, "dir"))
    with pytest.raises(ValueError, match="must not contain '..'"):
        atomic_writer.write(target, {"x/../../etc": FileProjection(b"")})


def test_volume_payloads():
    c = ctx()
    p = payload({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "mode", "path": "conf/mode",
                                                                      "mode": 0o400}], "defaultMode": 0o640}}, c)
    assert p == {"conf/mode": FileProjection(b"fast", 0o400)}
    p = payload({"name": "v", "secret": {"secretName": "creds", "defaultMode": 0o600}}, c)
    assert p == {"password": FileProjection(b"s3cret", 0o600)}
    with pytest.raises(ValueError, match="configmap references non-existent config key: nope"):
        payload({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}}, c)
    assert payload({"name": "v", "configMap": {"name": "absent", "optional": True}}, c) == {}
    p = payload({"name": "v", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "note", "fieldRef": {"fieldPath": "metadata.annotations['note']"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "requests.cpu", "divisor": "1m"}}]}}, c)
    assert p["labels"].data == b'app="web"\ntier="fe"' and p["note"].data == b'say "hi"' and p["cpu"].data == b"250"
    p = payload({"name": "v", "projected": {"defaultMode": 0o444, "sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "g"}]}},
        {"secret": {"name": "creds"}},
        {"serviceAccountToken": {"path": "token"}}]}}, c)
    assert sorted(p) == ["g", "password", "token"] and p["g"] == FileProjection(b"hello", 0o444)


def test_container_mounts_sub_path_and_read_only(tmp_path):
    vol = tmp_path / "v"
    atomic_writer.write(str(vol), {"app.conf": FileProjection(b"x")})
    ed = tmp_path / "e"
    ed.mkdir()
    volumes = {"cfg": {"name": "cfg", "configMap": {"name": "cfg"}}, "scratch": {"name": "scratch", "emptyDir": {}}}
    mounts = container_mounts({"volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/app/app.conf", "subPath": "app.conf"},
        {"name": "scratch", "mountPath": "/data", "subPathExpr": "$(POD)"},
        {"name": "scratch", "mountPath": "/ro", "readOnly": True}]}, volumes,
        {"cfg": str(vol), "scratch": str(ed)}, {"POD": "web-0"})
    assert mounts[0]["file"] and mounts[0]["ro"] and "..20" in mounts[0]["src"]  # the file itself: not updated
    assert mounts[1] == {"src": str(ed / "web-0"), "dst": "/data", "ro": False, "file": False}
    assert mounts[2]["ro"]
    with pytest.raises(VolumeError, match='MountVolume.SetUp failed for volume "scratch" : subPath'):
        container_mounts({"volumeMounts": [{"name": "scratch", "mountPath": "/x", "subPath": "../../etc"}]},
                         volumes, {"scratch": str(ed)}, {})


class _P:
    def __init__(self, exit_code=None, waiting=None):
        self.exit_code, self.waiting = exit_code, waiting


def test_init_container_plan_order_sidecars_and_failures():
    from netsim.node.init_containers import Step, plan
    inits = [{"name": "a"}, {"name": "side", "restartPolicy": "Always"}, {"name": "b"}]
    assert plan(inits, {}, "Always") == Step("start", "a")
    assert plan(inits, {"a": _P()}, "Always") == Step("wait", "a")
    assert plan(inits, {"a": _P(0)}, "Always") == Step("start", "side")
    assert plan(inits, {"a": _P(0), "side": _P()}, "Always") == Step("start", "b")  # a running sidecar: go on
    assert plan(inits, {"a": _P(0), "side": _P(), "b": _P(0)}, "Always") == Step("done")
    assert plan(inits, {"a": _P(1)}, "Always") == Step("restart", "a")
    assert plan(inits, {"a": _P(1)}, "OnFailure") == Step("restart", "a")
    assert plan(inits, {"a": _P(1)}, "Never") == Step("failed", "a")
    assert plan(inits, {"a": _P(waiting=("CreateContainerConfigError", "x"))}, "Always") == Step("retry", "a")
    # after initialization only sidecars are looked after: an exited one is restarted
    assert plan(inits, {"side": _P(0)}, "Always", done=True) == Step("restart", "side")
    assert plan(inits, {"side": _P()}, "Always", done=True) == Step("done")
    # a sidecar whose startupProbe has not succeeded holds the next init container back
    assert plan(inits, {"a": _P(0), "side": _P()}, "Always", unstarted=frozenset({"side"})) == Step("wait", "side")


def test_kubectl_status_column_for_init_containers():
    from netsim.printers import pod_row
    spec = {"initContainers": [{"name": "a"}, {"name": "s", "restartPolicy": "Always"}, {"name": "b"}],
            "containers": [{"name": "c"}]}

    def status(*states):
        pod = {"metadata": {"name": "p"}, "spec": spec, "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": n, **st} for n, st in zip(("a", "s", "b"), states)]}}
        return pod_row(pod, False, 0)[2]
    done = {"state": {"terminated": {"exitCode": 0}}}
    waiting = {"state": {"waiting": {"reason": "PodInitializing"}}}
    assert status({"state": {"running": {}}}, waiting, waiting) == "Init:0/3"
    assert status(done, {"state": {"running": {}}, "started": True}, {"state": {"running": {}}}) == "Init:2/3"
    assert status({"state": {"waiting": {"reason": "CrashLoopBackOff"}}}, waiting, waiting) == "Init:CrashLoopBackOff"
    assert status({"state": {"terminated": {"exitCode": 3, "reason": "Error"}}}, waiting, waiting) == "Init:Error"
    assert status(done, {"state": {"running": {}}, "started": True}, done) == "Pending"


def test_init_runner_adopted_pod_keeps_its_completed_init_statuses():
    from netsim.node.init_containers import InitRunner
    started, apps = [], []
    runner = InitRunner(lambda pod, c: started.append(c["name"]) or True, lambda pod: {},
                        lambda pod, name, code: None, lambda pod: apps.append(1))
    prev = {"name": "i", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}, "restartCount": 2}
    pod = {"metadata": {"name": "p", "namespace": "d"},
           "spec": {"initContainers": [{"name": "i", "command": ["true"]}], "containers": [{"name": "a"}]},
           "status": {"initContainerStatuses": [prev]}}
    runner.begin(pod, initialized=True)
    assert started == [] and runner.state(pod).done  # a completed init container is not run again
    assert runner.statuses(pod) == [prev]
