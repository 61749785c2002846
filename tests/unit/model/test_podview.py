"""One pod view for policy, DNS and felix (netsim.model.podview), from the typed Pod or a stored dict."""

from __future__ import annotations

import pytest

from netsim.dns import records
from netsim.model.podview import NamedPort, PodView
from netsim.objcache import ObjectCache
from netsim.policy import model as policy_model

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web"}, "resourceVersion": "7"},
       "spec": {"nodeName": "n2", "hostname": "web-0", "subdomain": "web",
                "containers": [{"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": 8080},
                                                                    {"containerPort": 53, "protocol": "UDP"}]}]},
       "status": {"podIP": "10.244.2.7", "podIPs": [{"ip": "10.244.2.7"}, {"ip": "fd00::7"}]}}


def test_policy_and_dns_share_the_one_pod_view():
    assert policy_model.PodInfo is PodView and records.PodInfo is PodView
    assert policy_model.ContainerPort is NamedPort


def test_the_typed_pod_and_the_stored_dict_give_the_same_view():
    typed = ObjectCache().decode(POD)
    view = PodView.of(typed)
    assert view == PodView.from_dict(POD)
    assert (view.key, view.ip, view.ips, view.node, view.hostname, view.subdomain) == \
        ("shop/web-0", "10.244.2.7", ("10.244.2.7", "fd00::7"), "n2", "web-0", "web")
    assert view.named_port("http", "TCP") == 8080 and view.named_port("http", "UDP") is None
    assert view.ports[1] == NamedPort(None, 53, "UDP")


def test_policy_and_dns_constructions_fill_ip_and_ips_from_each_other():
    assert PodView("ns", "a", {"x": "y"}, "10.0.0.1", "n1", [("p", 80, "TCP")]).ips == ("10.0.0.1",)
    assert PodView("ns", "a", ips=("10.0.0.2", "fd00::2")).ip == "10.0.0.2"


def test_dns_reads_no_ports_and_felix_refuses_bad_ones():
    bad = {**POD, "spec": {**POD["spec"], "containers": [{"name": "c", "ports": [{"containerPort": "x"}]}]}}
    assert PodView.from_dict(bad, ports=False).ports == ()
    with pytest.raises(ValueError):
        PodView.from_dict(bad)
