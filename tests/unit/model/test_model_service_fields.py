"""Service fields the API server validates or defaults and that change traffic: IP families on this
single-stack IPv4 cluster, loadBalancerSourceRanges trimming, nodePort clashes (bad inputs: bad/svc-*.yaml)."""

from __future__ import annotations

import pytest

from netsim.model.errors import SpecErrors
from netsim.model.loader import load_documents
from netsim.proxy.adapter import service_ports


def _svc(tmp_path, spec: str, name: str = "s", annotations: str = ""):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n{annotations}"
                    f"spec:\n  selector: {{app: web}}\n  ports: [{{port: 80}}]\n{spec}")
    [svc] = load_documents([str(path)])
    return svc


def test_ip_family_defaults(tmp_path):
    """initIPFamilyFields: no policy -> SingleStack [IPv4]; PreferDualStack keeps its policy with the one
    family the cluster has; a headless selectorless Service defaults to RequireDualStack with both."""
    plain = _svc(tmp_path, "")
    assert (plain.ip_family_policy, plain.ip_families) == ("SingleStack", ("IPv4",))
    assert plain.to_dict()["spec"]["ipFamilies"] == ["IPv4"]
    prefer = _svc(tmp_path, "  ipFamilyPolicy: PreferDualStack\n")
    assert (prefer.ip_family_policy, prefer.ip_families) == ("PreferDualStack", ("IPv4",))
    path = tmp_path / "h.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: None}\n")
    [headless] = load_documents([str(path)])
    assert (headless.ip_family_policy, headless.ip_families) == ("RequireDualStack", ("IPv4", "IPv6"))
    # What is stored parses again unchanged.
    path.write_text(__import__("yaml").safe_dump(prefer.to_dict()))
    assert load_documents([str(path)])[0].ip_families == ("IPv4",)


@pytest.mark.parametrize("spec,field", [
    ("  ipFamilyPolicy: RequireDualStack\n", "spec.ipFamilyPolicy"),
    ("  ipFamilies: [IPv6]\n", "spec.ipFamilies[0]"),
    ("  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv4, IPv6]\n", "spec.ipFamilies[1]"),
    ("  clusterIP: fd00::10\n", "spec.clusterIPs[0]"),
])
def test_dual_stack_requests_are_refused_on_a_single_stack_cluster(tmp_path, spec, field):
    with pytest.raises(SpecErrors) as info:
        _svc(tmp_path, spec)
    assert f"field {field}:" in info.value.errors[0].render()


def test_source_ranges_are_trimmed_and_rendered(tmp_path):
    """ValidateService trims each entry before IsValidCIDR; kube-proxy filters on the trimmed ranges."""
    svc = _svc(tmp_path, "  type: LoadBalancer\n  loadBalancerSourceRanges: [' 192.168.1.0/24', '10.0.0.0/8 ']\n",
               annotations="  annotations:\n    service.beta.kubernetes.io/load-balancer-source-ranges: "
                           "' 172.16.0.0/12 , 10.1.0.0/16'\n")
    assert svc.load_balancer_source_ranges == ("192.168.1.0/24", "10.0.0.0/8")
    [sp] = service_ports(svc.__class__(**{**svc.__dict__, "cluster_ip": "10.96.0.5"}), ["172.18.255.1"])
    assert sp.load_balancer_source_ranges == ("192.168.1.0/24", "10.0.0.0/8")


def test_allocate_load_balancer_node_ports_false_renders_no_node_port(tmp_path):
    svc = _svc(tmp_path, "  type: LoadBalancer\n  allocateLoadBalancerNodePorts: false\n  clusterIP: 10.96.0.5\n")
    [sp] = service_ports(svc, ["172.18.255.1"])
    assert sp.node_port == 0 and sp.load_balancer_ips == ("172.18.255.1",)
