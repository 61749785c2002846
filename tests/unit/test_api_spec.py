"""netsim.Cluster.up's spec argument: every accepted shape, and a clear error for a bad one (no root)."""

from __future__ import annotations

import pytest

from netsim.api import resolve_spec
from netsim.model.cluster import default_cluster
from netsim.model.errors import SpecError


def test_a_dict_is_a_cluster_document_with_apiversion_and_kind_optional():
    spec = resolve_spec({"metadata": {"name": "shop"}, "spec": {"nodes": 2, "network": {"plugin": "calico"}}}, None)
    assert (spec.name, len(spec.nodes), spec.network.plugin) == ("shop", 2, "calico")
    assert resolve_spec({"metadata": {"name": "shop"}, "spec": {"nodes": 1}}, "other").name == "other"


def test_other_shapes():
    assert resolve_spec(None, "x").name == "x"
    base = default_cluster("a")
    assert resolve_spec(base, None) is base
    assert resolve_spec(base, "b").name == "b"


def test_a_bad_dict_names_the_field():
    with pytest.raises(SpecError) as exc:
        resolve_spec({"metadata": {"name": "shop"}, "spec": {"network": {"plugin": "weave"}}}, None)
    assert "plugin" in str(exc.value) and "<dict>" in str(exc.value)
