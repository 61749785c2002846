"""Size and rate limits as the API server and etcd have them, and netsim's own refusals that keep one bad
object out of the cluster: annotations (256 KiB), requests (3 MiB), stored objects (1.5 MiB), YAML alias
expansion, replicas, `scale` targets and external IPs that would break the node network."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from netsim.api import check_scale
from netsim.cli.main import cli
from netsim.controlplane.admission import admit, external_ip_problem
from netsim.model.cluster import default_cluster
from netsim.model.errors import SpecError, SpecErrors, UsageError
from netsim.model.limits import (
    MAX_OBJECT_BYTES,
    MAX_REQUEST_BYTES,
    TOTAL_ANNOTATION_BYTES,
    allowed_alias_ratio,
)
from netsim.model.loader import parse_documents
from netsim.store import InvalidObject, MemoryStore


def _pod(annotations: dict | None = None, **spec) -> str:
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": annotations or {}},
           "spec": {"containers": [{"name": "c"}], **spec}}
    return json.dumps(doc)  # JSON is YAML; fast to write at these sizes


def _errors(text: str) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        parse_documents(text)
    return [e.render() for e in info.value.errors]


def test_annotations_total_size_is_bounded_at_256_kib():
    key = "a"
    parse_documents(_pod({key: "x" * (TOTAL_ANNOTATION_BYTES - len(key))}))  # exactly the limit: accepted
    errs = _errors(_pod({key: "x" * (TOTAL_ANNOTATION_BYTES - len(key) + 1)}))
    assert errs == ["<inline> (document 1): Pod default/p: field metadata.annotations: too long: annotations "
                    f"total {TOTAL_ANNOTATION_BYTES + 1} bytes, must have at most 262144 bytes (256 KiB)"]


def test_a_ten_megabyte_annotation_is_refused_before_it_reaches_the_store():
    errs = _errors(_pod({"big": "x" * (10 * 1024 * 1024)}))
    assert len(errs) == 1 and "field metadata.annotations: too long" in errs[0]


def test_template_annotations_are_checked_too():
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}, "annotations": {"k": "x" * 300_000}},
                                 "spec": {"containers": [{"name": "c"}]}}}}
    errs = _errors(json.dumps(doc))
    assert "field spec.template.metadata.annotations: too long" in errs[0]


def test_an_object_over_the_request_limit_is_refused():
    errs = _errors(_pod(volumes=[{"name": "v", "emptyDir": {}, "x": "y" * MAX_REQUEST_BYTES}]))
    assert len(errs) == 1
    assert "Pod default/p: request entity too large" in errs[0] and "limit is 3145728" in errs[0]


def test_the_store_refuses_an_object_over_etcds_limit():
    store = MemoryStore()
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c"}], "volumes": [{"x": "y" * MAX_OBJECT_BYTES}]}}
    with pytest.raises(InvalidObject, match="etcdserver: request is too large"):
        store.create(obj)
    assert store.current_rv() == 0 and store.get("Pod", "default", "p") is None
    obj["spec"]["volumes"] = []
    store.create(obj)
    big = {**obj, "metadata": {"name": "p"}, "spec": {**obj["spec"], "volumes": [{"x": "y" * MAX_OBJECT_BYTES}]}}
    with pytest.raises(InvalidObject):
        store.update(big)
    assert store.get("Pod", "default", "p")["spec"]["volumes"] == []


def test_alias_bomb_is_refused_without_being_expanded():
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: bomb}\nspec:\n  containers: [{name: c}]\n  volumes:\n  - "
            + "\n    ".join(levels) + "\n")
    assert len(text) < 700  # would be ~2.7 GB as JSON
    errs = _errors(text)
    assert len(errs) == 1 and "YAML document refused" in errs[0] and "3 MiB" in errs[0]


def test_ordinary_anchors_are_still_read():
    text = """
apiVersion: v1
kind: Pod
metadata: {name: p, labels: &l {app: web}}
spec:
  nodeSelector: *l
  containers:
  - {name: a, image: x, env: &e [{name: A, value: "1"}]}
  - {name: b, env: *e}
"""
    (pod,) = parse_documents(text)
    assert [c.name for c in pod.spec.containers] == ["a", "b"] and pod.spec.node_selector == {"app": "web"}


def test_alias_ratio_follows_go_yaml():
    assert allowed_alias_ratio(1000) == 0.99
    assert allowed_alias_ratio(400_000) == 0.99
    assert allowed_alias_ratio(4_000_000) == 0.10
    assert 0.10 < allowed_alias_ratio(2_200_000) < 0.99


@pytest.mark.parametrize("name", ["A=B", "", "caf\u00e9", "tab\there"])
def test_env_var_names_the_kubelet_could_not_pass_are_refused(name):
    errs = _errors(_pod(containers=[{"name": "c", "command": ["true"], "env": [{"name": name, "value": "x"}]}]))
    assert "field spec.containers[0].env[0].name" in errs[0]


@pytest.mark.parametrize("name", ["PATH", "my.env-name", "1_LEADING_DIGIT", "with space"])
def test_relaxed_env_var_names_are_accepted(name):
    parse_documents(_pod(containers=[{"name": "c", "env": [{"name": name, "value": "x"}]}]))


# -- scale ------------------------------------------------------------------------------------------------

def test_scale_refuses_kinds_without_a_scale_subresource_and_negative_counts():
    check_scale("Deployment", 0)
    check_scale("StatefulSet", 3)
    with pytest.raises(UsageError, match="the server could not find the requested resource"):
        check_scale("Service", 2)
    with pytest.raises(UsageError, match="COUNT must be greater than or equal to 0"):
        check_scale("Deployment", -5)
    with pytest.raises(UsageError, match="at most 50000"):
        check_scale("ReplicaSet", 500_000)


@pytest.mark.parametrize("args, expect", [
    (["scale", "service/web", "--replicas", "2"], "could not find the requested resource"),
    (["scale", "deploy/web", "--replicas", "-5"], "COUNT must be greater than or equal to 0"),
    (["scale", "pod/web", "--replicas", "1"], "Pod has no scale subresource"),
])
def test_scale_cli_exits_2_before_touching_any_cluster(args, expect):
    res = CliRunner().invoke(cli, [*args, "--cluster", "no-such-cluster"])
    assert res.exit_code == 2, res.output
    assert expect in res.output


# -- external IPs against the cluster's networks --------------------------------------------------------------

SPEC = default_cluster("c")


@pytest.mark.parametrize("ip, expect", [
    ("172.18.0.1", "fabric gateway"),
    ("172.18.0.3", "IP of node node-2"),
    ("203.0.113.10", "external host client"),
    ("172.18.255.255", "broadcast address"),
    ("10.244.1.7", "inside the pod network"),
    ("10.96.0.10", "inside the service network"),
    ("239.1.2.3", "not a unicast address"),
    ("255.255.255.255", "not a unicast address"),
])
def test_external_ips_that_would_break_the_node_network_are_refused(ip, expect):
    assert expect in (external_ip_problem(ip, SPEC) or "")


@pytest.mark.parametrize("ip", ["203.0.113.50", "172.18.100.10", "198.51.100.1"])
def test_ordinary_external_ips_are_accepted(ip):
    assert external_ip_problem(ip, SPEC) is None


def test_admission_names_the_service_and_field():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
           "spec": {"ports": [{"port": 80}], "externalIPs": ["203.0.113.50", "172.18.0.2"]}}
    with pytest.raises(SpecError) as info:
        admit([svc], SPEC, [], ["default"])
    assert info.value.obj == "Service default/s" and info.value.field == "spec.externalIPs[1]"
    assert "IP of node node-1" in info.value.message
    json.dumps(admit([{**svc, "spec": {**svc["spec"], "externalIPs": ["203.0.113.50"]}}], SPEC, [], ["default"]))
