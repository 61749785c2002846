"""The kubelet's and runtime's security decisions for a container (pure): users, runAsNonRoot,
capabilities, no_new_privs; the securityContext validation and the Cluster spec's containerDefaults."""

from __future__ import annotations

import json

import pytest

from netsim.model.cluster import default_cluster, parse_cluster
from netsim.model.errors import Source, SpecError
from netsim.model.loader import parse_object
from netsim.node.security import DEFAULT_CAPS, ContainerConfigError, effective, launcher_argv


def pod(pod_sc=None, sc=None, name="p"):
    c = {"name": "c", "image": "x", "command": ["true"], **({"securityContext": sc} if sc is not None else {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns", "uid": "u-1"},
            "spec": {"containers": [c], **({"securityContext": pod_sc} if pod_sc is not None else {})}}


def sec(p, default_uid=65534, default_gid=65534):
    return effective(p, p["spec"]["containers"][0], default_uid=default_uid, default_gid=default_gid,
                     primary_gid=lambda uid: {0: 0, 1000: 1000}.get(uid, 0))


def test_no_user_means_the_cluster_default_not_root():
    s = sec(pod())
    assert (s.uid, s.gid, s.groups) == (65534, 65534, ())
    assert set(s.caps) == set(DEFAULT_CAPS) and s.no_new_privs and not s.privileged


def test_container_fields_override_pod_fields():
    s = sec(pod({"runAsUser": 1, "runAsGroup": 2, "supplementalGroups": [5, 6]}, {"runAsUser": 3}))
    assert (s.uid, s.gid, s.groups) == (3, 2, (5, 6))


def test_a_user_without_a_group_takes_its_passwd_group_as_containerd():
    assert sec(pod(None, {"runAsUser": 1000})).gid == 1000
    assert sec(pod(None, {"runAsUser": 4242})).gid == 0  # no passwd entry: group 0


@pytest.mark.parametrize("pod_sc, sc, default_uid, message", [
    ({"runAsNonRoot": True}, {"runAsUser": 0}, 65534, "container's runAsUser breaks non-root policy"),
    ({"runAsNonRoot": True, "runAsUser": 0}, None, 65534, "container's runAsUser breaks non-root policy"),
    (None, {"runAsNonRoot": True}, 0, "container has runAsNonRoot and image will run as root"),
])
def test_run_as_non_root_is_refused_with_the_kubelets_message(pod_sc, sc, default_uid, message):
    with pytest.raises(ContainerConfigError) as e:
        sec(pod(pod_sc, sc), default_uid=default_uid)
    assert str(e.value) == f'{message} (pod: "p_ns(u-1)", container: c)'
    assert e.value.reason == "CreateContainerConfigError"


def test_run_as_non_root_allows_non_zero_users_and_can_be_overridden():
    assert sec(pod({"runAsNonRoot": True})).uid == 65534
    assert sec(pod({"runAsNonRoot": True}, {"runAsNonRoot": False, "runAsUser": 0})).uid == 0


def test_capabilities_add_drop_all_and_privileged():
    assert "NET_ADMIN" in sec(pod(None, {"capabilities": {"add": ["CAP_NET_ADMIN"]}})).caps
    assert "NET_RAW" not in sec(pod(None, {"capabilities": {"drop": ["net_raw"]}})).caps
    assert sec(pod(None, {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})).caps == (
        "NET_BIND_SERVICE",)
    p = sec(pod(None, {"privileged": True}))
    assert "SYS_ADMIN" in p.caps and p.privileged and not p.no_new_privs
    assert not sec(pod(None, {"allowPrivilegeEscalation": True})).no_new_privs


def test_launcher_masks_the_state_and_sets_pod_sysctls():
    s = sec(pod())
    argv = launcher_argv(s, ["sleep", "1"], netns="netsim-c-pod-ns-p", hostname="p",
                         sysctls={"net.ipv4.ip_unprivileged_port_start": "0"})
    assert argv[1:3] == ["-I", "-S"] and argv[-2:] == ["sleep", "1"]
    conf = json.loads(argv[4])
    assert conf["uid"] == 65534 and conf["masked"] == ["/run/netsim"] and conf["nnp"] is True
    assert conf["etc"] == "/etc/netns/netsim-c-pod-ns-p" and conf["sysctls"]
    privileged = launcher_argv(sec(pod(None, {"privileged": True})), ["x"], netns="n", hostname="p")
    assert json.loads(privileged[4])["masked"] == []


@pytest.mark.parametrize("pod_sc, sc, field, message", [
    ({"runAsUser": -1}, None, "spec.securityContext.runAsUser", "must be between 0 and 2147483647"),
    (None, {"runAsGroup": 2147483648}, "spec.containers[0].securityContext.runAsGroup", "must be between"),
    ({"supplementalGroups": ["x"]}, None, "spec.securityContext.supplementalGroups[0]", "must be between"),
    (None, {"runAsNonRoot": "yes"}, "spec.containers[0].securityContext.runAsNonRoot", "true or false"),
    (None, {"capabilities": {"add": ["NET_WIZARD"]}}, "securityContext.capabilities.add[0]",
     "unknown capability"),
    (None, {"privileged": True, "allowPrivilegeEscalation": False},
     "spec.containers[0].securityContext.allowPrivilegeEscalation", "cannot set `allowPrivilegeEscalation`"),
    (None, {"runAsUsr": 1}, "spec.containers[0].securityContext.runAsUsr", "unknown field"),
])
def test_security_context_validation_names_the_field(pod_sc, sc, field, message):
    with pytest.raises(SpecError) as e:
        parse_object(pod(pod_sc, sc), Source("pods.yaml"))
    assert field in str(e.value) and message in str(e.value) and "pods.yaml" in str(e.value)


def test_a_valid_security_context_round_trips():
    p = pod({"runAsUser": 1, "runAsNonRoot": True}, {"runAsUser": 2, "capabilities": {"drop": ["ALL"]}})
    back = parse_object(p, Source("x")).to_dict()
    assert back["spec"]["securityContext"] == {"runAsUser": 1, "runAsNonRoot": True}
    assert back["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_cluster_spec_container_defaults():
    spec = default_cluster("x")
    assert (spec.containers.run_as_user, spec.containers.run_as_group) == (65534, 65534)
    doc = spec.to_dict()
    doc["spec"]["containerDefaults"] = {"runAsUser": 0}
    again = parse_cluster(doc, Source("c.yaml"))
    assert (again.containers.run_as_user, again.containers.run_as_group) == (0, 65534)
    assert parse_cluster(again.to_dict(), Source("c.yaml")).containers == again.containers
    doc["spec"]["containerDefaults"] = {"runAsUser": -5}
    with pytest.raises(SpecError, match=r"spec.containerDefaults.runAsUser"):
        parse_cluster(doc, Source("c.yaml"))
