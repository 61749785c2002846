"""Cluster spec validation: every error names the field; derived addresses follow the documented plan."""

from __future__ import annotations

import pytest
import yaml

from netsim.model.cluster import default_cluster, load_cluster_file, parse_cluster
from netsim.model.errors import Source, SpecError


def spec(**overrides):
    doc = {"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "demo"}, "spec": {}}
    for key, value in overrides.items():
        doc["spec"][key] = value
    return doc


def test_default_cluster():
    c = default_cluster()
    assert c.name == "demo"
    assert [n.name for n in c.nodes] == ["node-1", "node-2", "node-3"]
    assert (c.network.plugin, c.network.backend) == ("flannel", "vxlan")
    assert [c.node_ip(i) for i in range(3)] == ["172.18.0.2", "172.18.0.3", "172.18.0.4"]
    assert [c.node_pod_cidr(i) for i in range(3)] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert c.gateway_ip == "172.18.0.1"
    assert c.lb_pool == "172.18.255.0/24"
    assert c.external_hosts[0].ip == "203.0.113.10" and not c.external_hosts[0].on_node_network


def test_node_list_with_labels_and_taints():
    c = parse_cluster(spec(nodes=[
        {"name": "cp", "labels": {"node-role.kubernetes.io/control-plane": ""},
         "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
        {"name": "w1", "labels": {"zone": "a"}},
    ]), Source("c.yaml"))
    assert c.nodes[0].taints[0].effect == "NoSchedule"
    assert c.nodes[1].labels == {"zone": "a"}


def test_calico_direct_and_custom_cidrs():
    c = parse_cluster(spec(nodes=2, network={"plugin": "calico", "backend": "direct", "podCIDR": "192.168.0.0/16",
                                             "nodeCIDRMaskSize": 26, "serviceCIDR": "10.100.0.0/16",
                                             "nodeNetwork": "10.10.0.0/24"}), Source("c.yaml"))
    assert c.node_pod_cidr(1) == "192.168.0.64/26"
    assert c.lb_pool is None  # a /24 node network has no room for a default pool


def test_host_on_node_network():
    c = parse_cluster(spec(externalHosts=[{"name": "lb-client", "ip": "172.18.1.50"}]), Source("c.yaml"))
    assert c.external_hosts[0].on_node_network and c.external_hosts[0].prefixlen == 16


@pytest.mark.parametrize("overrides, field, text", [
    ({"nodes": 0}, "spec.nodes", "between 1 and"),
    ({"nodes": "three"}, "spec.nodes", "node count or a list"),
    ({"nodes": [{"name": "Node_1"}]}, "spec.nodes[0].name", "RFC 1123"),
    ({"nodes": [{"name": "a"}, {"name": "a"}]}, "spec.nodes[1].name", "duplicate"),
    ({"nodes": [{"name": "a", "taints": [{"key": "k", "effect": "Sometimes"}]}]}, "spec.nodes[0].taints[0].effect",
     "not one of"),
    ({"nodes": [{"name": "a", "labels": {"bad key!": "v"}}]}, "spec.nodes[0].labels.bad key!", "label key"),
    ({"network": {"plugin": "weave"}}, "spec.network.plugin", "not one of"),
    ({"network": {"plugin": "calico", "backend": "host-gw"}}, "spec.network.backend", "not a calico backend"),
    ({"network": {"podCIDR": "10.244.0.0/33"}}, "spec.network.podCIDR", "not a valid IPv4 CIDR"),
    ({"network": {"podCIDR": "10.244.1.0/16"}}, "spec.network.podCIDR", "host bits"),
    ({"network": {"serviceCIDR": "10.244.0.0/20"}}, "spec.network.serviceCIDR", "overlaps"),
    ({"network": {"nodeNetwork": "10.0.0.0/8"}}, "spec.network.nodeNetwork", "overlaps"),
    ({"network": {"nodeCIDRMaskSize": 12}}, "spec.network.nodeCIDRMaskSize", "larger than the pod CIDR"),
    ({"network": {"nodeCIDRMaskSize": "24"}}, "spec.network.nodeCIDRMaskSize", "must be an integer"),
    ({"network": {"podCIDR": "10.244.0.0/23"}, "nodes": 3}, "spec.network.podCIDR", "fewer than the 3 nodes"),
    ({"network": {"nodeNetwork": "172.18.0.0/29"}, "nodes": 6}, "spec.network.nodeNetwork", "no room for 6 nodes"),
    ({"network": {"loadBalancerPool": "198.51.100.0/24"}}, "spec.network.loadBalancerPool", "inside the node network"),
    ({"network": {"mtu": 100}}, "spec.network.mtu", "at least 1280"),
    ({"network": {"cniMode": "magic"}}, "spec.network.cniMode", "not one of"),
    ({"network": {"plugin": "calico", "natOutgoing": "yes"}}, "spec.network.natOutgoing", "true or false"),
    ({"network": {"plugin": "canal", "natOutgoing": False}}, "spec.network.natOutgoing", "calico IP pool setting"),
    ({"network": {"natOutgoing": True}}, "spec.network.natOutgoing", "--ip-masq"),
    ({"network": {"pluginn": "calico"}}, "spec.network.pluginn", "unknown field"),
    ({"externalHosts": [{"name": "c", "ip": "not-an-ip"}]}, "spec.externalHosts[0].ip", "not an IPv4"),
    ({"externalHosts": [{"name": "c", "ip": "172.18.0.2"}]}, "spec.externalHosts[0].ip", "node node-1"),
    ({"externalHosts": [{"name": "c", "ip": "10.244.7.7"}]}, "spec.externalHosts[0].ip", "overlaps the pod CIDR"),
    ({"externalHosts": [{"name": "c", "ip": "203.0.113.1"}]}, "spec.externalHosts[0].ip", "reserved"),
    ({"externalHosts": [{"name": "node-1", "ip": "203.0.113.9"}]}, "spec.externalHosts[0].name", "already the name"),
    ({"externalHosts": [{"name": "c", "ip": "172.18.255.9"}]}, "spec.externalHosts[0].ip", "LoadBalancer pool"),
    ({"dns": {"domain": "Bad_Domain"}}, "spec.dns.domain", "not a valid DNS domain"),
    ({"extra": 1}, "spec.extra", "unknown field"),
])
def test_invalid_specs_name_the_field(overrides, field, text):
    with pytest.raises(SpecError) as err:
        parse_cluster(spec(**overrides), Source("cluster.yaml"))
    assert err.value.field == field
    assert text in err.value.message
    assert str(err.value).startswith("cluster.yaml: Cluster")


@pytest.mark.parametrize("doc, field, text", [
    ({"apiVersion": "v1", "kind": "Cluster"}, "apiVersion", "must be netsim/v1alpha1"),
    ({"apiVersion": "netsim/v1alpha1", "kind": "Pod"}, "kind", "must be Cluster"),
    ({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "UPPER"}}, "metadata.name", "DNS label"),
    ({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "x" * 21}}, "metadata.name",
     "at most 20"),
])
def test_invalid_header(doc, field, text):
    with pytest.raises(SpecError) as err:
        parse_cluster(doc, Source("c.yaml"))
    assert err.value.field == field and text in err.value.message


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: netsim/v1alpha1\nkind: Cluster\nspec: {nodes: [\n")
    with pytest.raises(SpecError) as err:
        load_cluster_file(str(bad))
    assert str(bad) in str(err.value) and "invalid YAML at line" in str(err.value)
    with pytest.raises(SpecError, match="cannot read"):
        load_cluster_file(str(tmp_path / "missing.yaml"))


def test_round_trip_to_dict():
    c = parse_cluster(spec(nodes=[{"name": "a", "labels": {"x": "1"}}], network={"plugin": "canal"},
                           externalHosts=[{"name": "h", "ip": "198.51.100.7/28"}]), Source("c.yaml"))
    again = parse_cluster(yaml.safe_load(yaml.safe_dump(c.to_dict())), Source("c.yaml"))
    assert again == c


def test_calico_nat_outgoing_defaults_on_and_round_trips():
    on = parse_cluster(spec(network={"plugin": "calico"}), Source("c.yaml"))
    assert on.network.nat_outgoing is True and on.to_dict()["spec"]["network"]["natOutgoing"] is True
    off = parse_cluster(spec(network={"plugin": "calico", "natOutgoing": False}), Source("c.yaml"))
    assert off.network.nat_outgoing is False
    assert parse_cluster(yaml.safe_load(yaml.safe_dump(off.to_dict())), Source("c.yaml")) == off
    assert "natOutgoing" not in default_cluster().to_dict()["spec"]["network"]  # flannel: not a setting


def test_store_spec_parses_validates_and_round_trips():
    from netsim.model.storespec import StoreSpec
    c = parse_cluster(spec(store={"type": "etcd"}), Source("c.yaml"))
    assert c.store == StoreSpec("etcd") and c.to_dict()["spec"]["store"] == {"type": "etcd"}
    c = parse_cluster(spec(store={"type": "etcd", "endpoints": ["http://127.0.0.1:2379", "http://[::1]:2379"]}),
                      Source("c.yaml"))
    assert parse_cluster(c.to_dict(), Source("again")).store == c.store
    assert "store" not in default_cluster().to_dict()["spec"]
    bad = [({"type": "zookeeper"}, "spec.store.type", "'zookeeper' is not one of sqlite, etcd"),
           ({"endpoints": ["http://127.0.0.1:2379"]}, "spec.store.endpoints", "only an etcd store has endpoints"),
           ({"type": "etcd", "endpoints": ["http://192.0.2.1:2379"]}, "spec.store.endpoints[0]", "loopback"),
           ({"type": "etcd", "endpoints": ["https://127.0.0.1:2379"]}, "spec.store.endpoints[0]", "http://HOST:PORT"),
           ({"type": "etcd", "leases": True}, "spec.store.leases", "unknown field")]
    for store, field, text in bad:
        with pytest.raises(SpecError) as e:
            parse_cluster(spec(store=store), Source("c.yaml"))
        assert f"field {field}:" in str(e.value) and text in str(e.value) and "c.yaml: Cluster" in str(e.value)


def test_netsim_store_env_sets_the_default_store_only(monkeypatch):
    from netsim.etcd.config import default_store
    from netsim.model.storespec import StoreSpec
    monkeypatch.setenv("NETSIM_STORE", "etcd")
    assert default_store(StoreSpec()) == StoreSpec("etcd")
    given = StoreSpec("etcd", ("http://127.0.0.1:2379",))
    assert default_store(given) is given
    monkeypatch.setenv("NETSIM_STORE", "bogus")
    assert default_store(StoreSpec()) == StoreSpec()
