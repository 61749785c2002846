"""Kinds, apiVersions and kubectl's names for them."""

from __future__ import annotations

import pytest

from netsim.model.registry import KINDS, kind_alias, kind_info, kinds_for_api_version


@pytest.mark.parametrize("name,kind", [
    ("po", "Pod"), ("pods", "Pod"), ("Pod", "Pod"), ("deploy", "Deployment"), ("deployments", "Deployment"),
    ("deployments.apps", "Deployment"), ("svc", "Service"), ("services", "Service"), ("ep", "EndpointSlice"),
    ("endpointslices", "EndpointSlice"), ("netpol", "NetworkPolicy"), ("networkpolicies", "NetworkPolicy"),
    ("ns", "Namespace"), ("rs", "ReplicaSet"), ("ds", "DaemonSet"), ("sts", "StatefulSet"), ("job", "Job"),
    ("jobs", "Job"), ("cj", "CronJob"), ("cronjobs.batch", "CronJob"), ("SVC", "Service"),
])
def test_aliases(name, kind):
    assert kind_alias(name) == kind


@pytest.mark.parametrize("name", ["ingresses.apps", "pod.apps", "deployments.batch", "x"])
def test_unknown_aliases(name):
    assert kind_alias(name) is None


def test_scope_and_versions():
    assert not kind_info("Namespace").namespaced and kind_info("Pod").namespaced
    assert sorted(kinds_for_api_version("apps/v1")) == ["DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"]
    assert kind_info("NetworkPolicy").api_versions == ("networking.k8s.io/v1",)


@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"NetworkPolicy"}))
def test_parsers_importable(kind):
    assert callable(KINDS[kind].parser)
