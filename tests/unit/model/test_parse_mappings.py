"""Manifest dicts handed to the Python API are validated once, as they are: no YAML dump and parse again."""

from __future__ import annotations

import pytest
import yaml

from netsim.api import Cluster
from netsim.model.errors import SpecErrors
from netsim.model.loader import parse_mappings

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "nginx"}], "affinity": {"podAffinity": {}}}}


def test_a_dict_is_parsed_without_a_yaml_round_trip(monkeypatch):
    def no_dump(*a, **kw):
        raise AssertionError("a manifest dict was dumped to YAML to be parsed again")

    monkeypatch.setattr(yaml, "safe_dump", no_dump)
    monkeypatch.setattr(yaml, "dump", no_dump)
    docs = Cluster._documents([POD])
    assert docs[0]["metadata"] == {"name": "p", "namespace": "default"}
    assert docs[0]["spec"]["restartPolicy"] == "Always"  # defaulted by the model


def test_the_callers_dict_is_not_shared_with_what_is_stored():
    docs = Cluster._documents(POD)
    docs[0]["spec"]["affinity"]["podAffinity"]["x"] = 1
    assert POD["spec"]["affinity"] == {"podAffinity": {}}


def test_errors_name_the_inline_document_and_field():
    bad = {**POD, "spec": {"containers": []}}
    with pytest.raises(SpecErrors) as e:
        parse_mappings([POD, bad])
    assert "<inline>" in str(e.value) and "spec.containers" in str(e.value)
