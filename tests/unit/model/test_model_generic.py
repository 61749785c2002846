"""Every built-in kind is accepted as the API server accepts it; CRDs define kinds; others are refused."""

from __future__ import annotations

import base64
import io

import pytest

from netsim.model.builtin_kinds import BUILTIN_KINDS, served_api_versions
from netsim.model.errors import SpecErrors
from netsim.model.generic import StoredObject, custom_kinds_from
from netsim.model.loader import load_documents, parse_documents
from netsim.model.registry import custom_alias, is_emulated, kind_alias, namespaced

APP = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: cart}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cart-config, namespace: shop, labels: {app: cart}}
data: {REDIS_ADDR: "redis:6379"}
---
apiVersion: v1
kind: Secret
metadata: {name: cart-secret}
stringData: {password: hunter2}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: cart}
spec: {minAvailable: 1, selector: {matchLabels: {app: cart}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec: {rules: [{host: shop.example.com}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:cart-reader"}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: cart}
spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: cart}, maxReplicas: 3}
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: e1}
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, shortNames: [wd]}
  scope: %s
  versions: [{name: v1, served: true, storage: true}, {name: v1beta1, served: false, storage: false}]
"""

WIDGET = """
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
"""


def test_every_builtin_kind_of_a_real_app_is_stored_as_written():
    objs = parse_documents(APP, "app.yaml")
    assert [o.kind for o in objs] == ["ServiceAccount", "ConfigMap", "Secret", "PodDisruptionBudget", "Ingress",
                                      "ClusterRole", "HorizontalPodAutoscaler", "Event"]
    # HPAs are emulated, PDBs typed (netsim.model.disruption): the rest are stored as written
    assert all(isinstance(o, StoredObject) for o in objs if o.kind not in ("HorizontalPodAutoscaler",
                                                                           "PodDisruptionBudget"))
    by = {o.kind: o.to_dict() for o in objs}
    assert by["ConfigMap"]["metadata"] == {"name": "cart-config", "namespace": "shop", "labels": {"app": "cart"}}
    assert by["ServiceAccount"]["metadata"]["namespace"] == "default"
    assert "namespace" not in by["ClusterRole"]["metadata"]
    assert by["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    # the API server folds stringData into data, base64-encoded, and defaults the type
    assert by["Secret"]["data"] == {"password": base64.b64encode(b"hunter2").decode()}
    assert "stringData" not in by["Secret"] and by["Secret"]["type"] == "Opaque"
    # HPAs are emulated: an autoscaling/v1 one is stored as the API server keeps it, in v2 form
    assert by["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    assert by["HorizontalPodAutoscaler"]["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]


@pytest.mark.parametrize("info", BUILTIN_KINDS, ids=lambda b: b.kind)
def test_each_builtin_kind_is_accepted_or_refused_clearly(info):
    """Every kind at every served version: stored (or, for request-only kinds and Node, refused by name)."""
    for api_version in served_api_versions(info.kind):
        doc = f"apiVersion: {api_version}\nkind: {info.kind}\nmetadata: {{name: x1}}\n"
        if info.kind in ("Pod", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob",
                         "Service", "EndpointSlice", "NetworkPolicy", "Namespace", "CustomResourceDefinition",
                         "HorizontalPodAutoscaler", "ReplicationController"):
            continue  # emulated and typed kinds and CRDs: their own parsers, tests and corpus
        if not info.storable or info.kind == "Node":
            with pytest.raises(SpecErrors, match="field kind"):
                parse_documents(doc, "k.yaml")
            continue
        (obj,) = parse_documents(doc, "k.yaml")
        assert obj.kind == info.kind and obj.api_version == api_version
        assert (obj.meta.namespace is not None) == info.namespaced
        # `get endpoints` shows the EndpointSlices netsim keeps (it writes no Endpoints objects)
        assert kind_alias(info.plural) == ("EndpointSlice" if info.kind == "Endpoints" else info.kind)
        assert namespaced(info.kind) == info.namespaced
        assert not is_emulated(info.kind)


def test_short_names_and_group_forms_resolve():
    assert kind_alias("cm") == "ConfigMap"
    assert kind_alias("sa") == "ServiceAccount"
    assert kind_alias("pdb") == "PodDisruptionBudget"
    assert kind_alias("ingresses.networking.k8s.io") == "Ingress"
    assert kind_alias("hpa") == "HorizontalPodAutoscaler"
    assert kind_alias("crd") == "CustomResourceDefinition"
    assert kind_alias("ingresses.apps") is None


@pytest.mark.parametrize("scope", ["Namespaced", "Cluster"])
def test_a_crd_in_the_same_input_defines_its_kind(scope):
    objs = parse_documents(CRD % scope + "---" + WIDGET, "w.yaml")
    assert [o.kind for o in objs] == ["CustomResourceDefinition", "Widget"]
    assert objs[1].meta.namespace == ("default" if scope == "Namespaced" else None)


def test_a_stored_crd_defines_its_kind_and_names():
    crd = parse_documents(CRD % "Namespaced", "crd.yaml")[0].to_dict()
    custom = custom_kinds_from([crd])
    (w,) = parse_documents(WIDGET, "w.yaml", custom)
    assert w.kind == "Widget" and w.to_dict()["spec"] == {"size": 3}
    for name in ("widget", "widgets", "wd", "Widget", "widgets.example.com"):
        assert custom_alias(name, custom) == "Widget"
    with pytest.raises(SpecErrors, match='no matches for kind "Widget" in version "example.com/v1beta1"'):
        parse_documents(WIDGET.replace("example.com/v1", "example.com/v1beta1"), "w.yaml", custom)


def test_unknown_kind_is_refused_as_the_api_server_does_and_nothing_is_returned():
    with pytest.raises(SpecErrors) as info:
        parse_documents(APP + "---" + WIDGET, "mixed.yaml")
    (err,) = info.value.errors
    assert err.render() == ('mixed.yaml (document 9): Widget w1: field kind: no matches for kind "Widget" in '
                            'version "example.com/v1"; ensure CRDs are installed first')


def test_skip_unknown_stores_the_object_unverified():
    objs = parse_documents(APP + "---" + WIDGET, "mixed.yaml", skip_unknown=True)
    widget = objs[-1]
    assert widget.kind == "Widget" and widget.verified is False
    assert all(getattr(o, "verified", True) for o in objs[:-1])


def test_lists_of_any_kind_are_unpacked():
    text = """
apiVersion: v1
kind: ConfigMapList
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {k: v}}
- {apiVersion: v1, kind: Secret, metadata: {name: b}}
"""
    assert [o.kind for o in parse_documents(text, "l.yaml")] == ["ConfigMap", "Secret"]


def test_directories_recurse_only_when_asked(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "top.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: top}\n")
    (tmp_path / "sub" / "deep.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\n")
    assert [o.meta.name for o in load_documents([str(tmp_path)], recursive=False)] == ["top"]
    assert sorted(o.meta.name for o in load_documents([str(tmp_path)], recursive=True)) == ["deep", "top"]
    stdin = io.StringIO("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s}\n")
    assert [o.kind for o in load_documents(["-"], stdin=stdin)] == ["ServiceAccount"]
