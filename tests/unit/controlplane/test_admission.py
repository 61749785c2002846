"""What the API server fills in before storing: ClusterIPs, NodePorts, LoadBalancer IPs, namespaces."""

from __future__ import annotations

import pytest

from netsim.controlplane.admission import admit
from netsim.model.cluster import default_cluster
from netsim.model.errors import SpecError


def svc(name, ns="default", **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], **spec}}


def test_cluster_ips_skip_the_dns_address_and_dns_gets_it():
    spec = default_cluster()
    out = admit([svc("a"), svc("kube-dns", "kube-system")], spec, [], ["default", "kube-system"])
    ips = {o["metadata"]["name"]: o["spec"]["clusterIP"] for o in out}
    assert ips == {"a": "10.96.0.1", "kube-dns": "10.96.0.10"}


def test_existing_allocations_are_kept_and_conflicts_rejected():
    spec = default_cluster()
    stored = admit([svc("a", type="NodePort")], spec, [], ["default"])
    again = admit([svc("a", type="NodePort")], spec, stored, ["default"])
    assert again[0]["spec"]["clusterIP"] == stored[0]["spec"]["clusterIP"]
    assert again[0]["spec"]["ports"][0]["nodePort"] == stored[0]["spec"]["ports"][0]["nodePort"] == 30000
    with pytest.raises(SpecError, match="spec.clusterIP"):
        admit([svc("b", clusterIP=stored[0]["spec"]["clusterIP"])], spec, stored, ["default"])
    with pytest.raises(SpecError, match="not in the valid range"):
        admit([svc("c", clusterIP="192.0.2.1")], spec, stored, ["default"])


def test_load_balancer_ip_from_the_pool_without_network_address():
    spec = default_cluster()
    out = admit([svc("lb", type="LoadBalancer")], spec, [], ["default"])
    assert out[0]["status"]["loadBalancer"]["ingress"][0]["ip"] == "172.18.255.1"
    assert out[0]["spec"]["ports"][0]["nodePort"] == 30000


def test_missing_namespaces_are_created_first():
    spec = default_cluster()
    out = admit([svc("a", "shop")], spec, [], ["default"])
    assert [o["kind"] for o in out] == ["Namespace", "Service"]
    assert out[0]["metadata"]["labels"] == {"kubernetes.io/metadata.name": "shop"}


def test_headless_gets_no_cluster_ip():
    out = admit([svc("h", clusterIP="None")], default_cluster(), [], ["default"])
    assert out[0]["spec"]["clusterIP"] == "None"


def test_allocate_load_balancer_node_ports_false_allocates_none_but_honours_requests():
    """initNodePorts (pkg/registry/core/service/storage/alloc.go): with allocateLoadBalancerNodePorts false
    no nodePort is picked, a requested one is still reserved; the health check port is still allocated."""
    spec = default_cluster()
    two = [{"name": "a", "port": 80, "protocol": "TCP"}, {"name": "b", "port": 81, "protocol": "TCP",
                                                            "nodePort": 30500}]
    out = admit([svc("lb", type="LoadBalancer", allocateLoadBalancerNodePorts=False, ports=two,
                     externalTrafficPolicy="Local")], spec, [], ["default"])
    ports = out[0]["spec"]["ports"]
    assert "nodePort" not in ports[0] and ports[1]["nodePort"] == 30500
    assert out[0]["spec"]["healthCheckNodePort"] == 30000
    assert out[0]["status"]["loadBalancer"]["ingress"][0]["ip"] == "172.18.255.1"
    with pytest.raises(SpecError, match="already allocated"):
        admit([svc("np", type="NodePort", ports=[{"port": 80, "nodePort": 30500}])], spec, out, ["default"])


def test_requested_health_check_port_is_not_handed_out_as_a_node_port():
    """The lowest free port would be 30000; a requested healthCheckNodePort 30000 is reserved first, so the
    Service's nodePort is another one (upstream refuses a nodePort == healthCheckNodePort)."""
    spec = default_cluster()
    out = admit([svc("lb", type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30000)],
                spec, [], ["default"])
    assert out[0]["spec"]["healthCheckNodePort"] == 30000
    assert out[0]["spec"]["ports"][0]["nodePort"] == 30001
    again = admit([out[0]], spec, out, ["default"])  # re-applying the stored object changes nothing
    assert again[0]["spec"] == out[0]["spec"]


def _lb(name, annotations=None, **spec):
    s = svc(name, type="LoadBalancer", **spec)
    if annotations:
        s["metadata"]["annotations"] = annotations
    return s


@pytest.mark.parametrize("key", ["metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"])
def test_metallb_annotation_requests_the_ingress_ip(key):
    spec = default_cluster()
    out = admit([_lb("a", {key: " 172.18.255.7"})], spec, [], ["default"])
    assert out[0]["status"]["loadBalancer"]["ingress"] == [{"ip": "172.18.255.7", "ipMode": "VIP"}]
    with pytest.raises(SpecError, match="already allocated") as info:
        admit([_lb("b", {key: "172.18.255.7"})], spec, out, ["default"])
    assert info.value.field == f"metadata.annotations[{key}]"


@pytest.mark.parametrize("annotations,spec_fields,message", [
    ({"metallb.io/loadBalancerIPs": "172.18.255.7"}, {"loadBalancerIP": "172.18.255.8"},
     "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"),
    ({"metallb.io/loadBalancerIPs": "172.18.255.7,172.18.255.8"}, {}, "same address family"),
    ({"metallb.io/loadBalancerIPs": "172.18.255.7,fd00::7"}, {}, "does not match the ipFamily"),
    ({"metallb.io/loadBalancerIPs": "172.18.255.x"}, {}, "invalid metallb.io/loadBalancerIPs"),
    ({"metallb.io/loadBalancerIPs": "192.0.2.7"}, {}, "not in any LoadBalancer pool"),
])
def test_metallb_refusals(annotations, spec_fields, message):
    with pytest.raises(SpecError, match=message) as info:
        admit([_lb("a", annotations, **spec_fields)], default_cluster(), [], ["default"])
    assert info.value.field == "metadata.annotations[metallb.io/loadBalancerIPs]"
