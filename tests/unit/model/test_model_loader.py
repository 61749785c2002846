"""The loader: files, directories, stdin, multi-document streams, lists, all-or-nothing errors."""

from __future__ import annotations

import io
import json

import pytest

from netsim.model.errors import SpecErrors
from netsim.model.loader import load_documents, object_key, object_ref, parse_documents

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec: {containers: [{name: c}]}\n"
BAD_POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec: {containers: [{name: C}]}\n"


def test_multi_document_with_null_documents():
    text = "---\n" + POD % "a" + "---\n---\n# only a comment\n---\n" + POD % "b"
    objs = parse_documents(text)
    assert [o.meta.name for o in objs] == ["a", "b"]
    assert object_key(objs[0]) == ("Pod", "default", "a")
    assert object_ref(objs[1]) == "Pod default/b"


def test_kind_list_and_typed_list():
    items = [json.loads(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n},
                                    "spec": {"containers": [{"name": "c"}]}})) for n in ("a", "b")]
    for kind in ("List", "PodList"):
        objs = parse_documents(json.dumps({"apiVersion": "v1", "kind": kind, "items": items}), "l.json")
        assert [o.meta.name for o in objs] == ["a", "b"]
    assert parse_documents("apiVersion: v1\nkind: List\nitems: []\n") == []


def test_every_bad_document_reported_and_nothing_returned():
    text = "---\n".join([POD % "a", BAD_POD % "b", POD % "c", BAD_POD % "d"])
    with pytest.raises(SpecErrors) as info:
        parse_documents(text, "many.yaml")
    errs = info.value.errors
    assert [(e.source.file, e.source.doc, e.obj, e.field) for e in errs] == [
        ("many.yaml", 1, "Pod default/b", "spec.containers[0].name"),
        ("many.yaml", 3, "Pod default/d", "spec.containers[0].name"),
    ]
    assert "many.yaml (document 2): Pod default/b: field spec.containers[0].name:" in str(info.value)
    assert info.value.exit_code == 2


def test_same_name_in_other_namespace_or_kind_is_not_a_duplicate():
    svc = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n"
    other_ns = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {containers: [{name: c}]}\n"
    assert len(parse_documents("---\n".join([POD % "a", svc, other_ns]))) == 3


def test_duplicate_across_files(tmp_path):
    (tmp_path / "one.yaml").write_text(POD % "a")
    (tmp_path / "two.yaml").write_text(POD % "a")
    with pytest.raises(SpecErrors) as info:
        load_documents([str(tmp_path / "one.yaml"), str(tmp_path / "two.yaml")])
    (err,) = info.value.errors
    assert err.source.file.endswith("two.yaml") and "one.yaml (document 1)" in err.message


def test_directory_recursive_sorted_and_filtered(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.yml").write_text(POD % "two")
    (tmp_path / "a.yaml").write_text(POD % "one")
    (tmp_path / "c.json").write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "three"}}))
    (tmp_path / "notes.txt").write_text("not a manifest: [")
    objs = load_documents(str(tmp_path))
    assert [o.meta.name for o in objs] == ["one", "two", "three"]


def test_stdin_and_missing_file(tmp_path):
    objs = load_documents(["-"], stdin=io.StringIO(POD % "x"))
    assert objs[0].meta.name == "x"
    with pytest.raises(SpecErrors) as info:
        load_documents(["-", str(tmp_path / "nope.yaml")], stdin=io.StringIO(BAD_POD % "y"))
    rendered = [e.render() for e in info.value.errors]
    assert rendered[0].startswith("- (document 1): Pod default/y")
    assert rendered[1] == f"{tmp_path / 'nope.yaml'}: no such file or directory"


def test_yaml_error_after_good_documents_rejects_everything():
    text = POD % "a" + "---\n" + "kind: [unclosed\n"
    with pytest.raises(SpecErrors) as info:
        parse_documents(text, "x.yaml")
    (err,) = info.value.errors
    assert err.source.doc == 1 and "YAML syntax error at line" in err.message


def test_timestamps_stay_strings_and_non_mapping_documents_rejected():
    objs = parse_documents("apiVersion: v1\nkind: Namespace\nmetadata: {name: n, creationTimestamp: "
                           "2024-01-01T00:00:00Z}\n")
    assert objs[0].meta.creation_timestamp == "2024-01-01T00:00:00Z"
    with pytest.raises(SpecErrors, match="a document must be a mapping"):
        parse_documents("- just\n- a list\n")


def test_status_is_accepted_and_dropped():
    objs = parse_documents(POD % "a" + "status: {phase: Running}\n")
    assert "status" not in objs[0].to_dict()


def test_networkpolicy_is_registered():
    pytest.importorskip("netsim.model.networkpolicy")
    objs = parse_documents("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress]
""")
    assert objs[0].kind == "NetworkPolicy" and objs[0].meta.key == "default/deny-all"


def test_namespace_option_fills_objects_that_name_none_and_refuses_another(tmp_path):
    """`apply -n NS` as kubectl: objects naming no namespace go to NS (in Lists too), cluster-scoped ones
    and those already naming NS are kept, one naming another namespace refuses the whole input."""
    text = """
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
apiVersion: v1
kind: List
items: [{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: 80}]}}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r}
---
apiVersion: v1
kind: Secret
metadata: {name: b, namespace: shop}
"""
    objs = parse_documents(text, namespace="shop")
    assert [(o.kind, o.meta.namespace) for o in objs] == [
        ("ConfigMap", "shop"), ("Service", "shop"), ("Namespace", None), ("ClusterRole", None), ("Secret", "shop")]
    assert {o.meta.namespace for o in parse_documents(text) if o.kind == "ConfigMap"} == {"default"}
    f = tmp_path / "other.yaml"
    f.write_text(text + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\n"
                        "spec: {containers: [{name: c, image: x}]}\n")
    with pytest.raises(SpecErrors) as info:
        load_documents([f], namespace="shop")
    (err,) = info.value.errors
    assert err.render().startswith(str(f))
    assert 'Pod prod/p: field metadata.namespace: the namespace from the provided object "prod" does not ' \
           'match the namespace "shop"' in err.render()
