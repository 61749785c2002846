"""spec.hosts and per-node host: placement, validation naming the field, round trip, the underlay MTU."""

from __future__ import annotations

import pytest
import yaml

from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source, SpecError

HOSTS = [{"name": "ha", "address": "192.168.50.11"}, {"name": "hb", "address": "192.168.50.12/24"},
         {"name": "hc", "address": "192.168.50.13"}]


def spec(**overrides):
    return {"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "demo"}, "spec": overrides}


def test_nodes_without_host_are_dealt_round_robin():
    c = parse_cluster(spec(hosts=HOSTS, nodes=9), Source("c.yaml"))
    assert [n.host for n in c.nodes] == ["ha", "hb", "hc"] * 3
    assert [n.name for n in c.nodes_on("hb")] == ["node-2", "node-5", "node-8"]
    assert c.host_of("node-3") == "hc"
    assert [(h.name, h.address, h.prefixlen) for h in c.hosts] == [
        ("ha", "192.168.50.11", 24), ("hb", "192.168.50.12", 24), ("hc", "192.168.50.13", 24)]
    assert c.underlay_mtu == 1450 and c.network.mtu == 1500


def test_named_hosts_win_and_the_rest_go_round_robin():
    c = parse_cluster(spec(hosts=HOSTS, nodes=[{"name": "a", "host": "hc"}, {"name": "b"}, {"name": "c"},
                                               {"name": "d", "host": "hc"}, {"name": "e"}]), Source("c.yaml"))
    assert [n.host for n in c.nodes] == ["hc", "ha", "hb", "hc", "hc"]


def test_without_hosts_nothing_changes():
    c = parse_cluster(spec(nodes=2), Source("c.yaml"))
    assert c.hosts == () and [n.host for n in c.nodes] == [None, None]
    assert c.underlay_mtu == 1500 and "hosts" not in c.to_dict()["spec"]
    one = parse_cluster(spec(nodes=2, hosts=HOSTS[:1]), Source("c.yaml"))
    assert one.underlay_mtu == 1500  # one host: no VXLAN between fabrics, no overhead


def test_round_trip_keeps_hosts_and_placement():
    c = parse_cluster(spec(hosts=HOSTS, nodes=[{"name": "a", "host": "hb"}, {"name": "b"}]), Source("c.yaml"))
    again = parse_cluster(yaml.safe_load(yaml.safe_dump(c.to_dict())), Source("c.yaml"))
    assert again == c and [n.host for n in again.nodes] == ["hb", "ha"]


@pytest.mark.parametrize("overrides, field, text", [
    ({"hosts": HOSTS, "nodes": [{"name": "a", "host": "hz"}]}, "spec.nodes[0].host", "unknown host 'hz'"),
    ({"nodes": [{"name": "a", "host": "ha"}]}, "spec.nodes[0].host", "spec.hosts lists no hosts"),
    ({"nodes": [{"name": "a", "host": 7}], "hosts": HOSTS}, "spec.nodes[0].host", "must be a string"),
    ({"hosts": [HOSTS[0], {"name": "hb", "address": "192.168.50.11"}]}, "spec.hosts[1].address",
     "already the address of host ha"),
    ({"hosts": [HOSTS[0], {"name": "ha", "address": "192.168.50.12"}]}, "spec.hosts[1].name", "duplicate host"),
    ({"hosts": [{"name": "ha", "address": "224.0.0.5"}]}, "spec.hosts[0].address", "not a unicast"),
    ({"hosts": [{"name": "ha", "address": "127.0.0.2"}]}, "spec.hosts[0].address", "not a unicast"),
    ({"hosts": [{"name": "ha", "address": "0.0.0.0"}]}, "spec.hosts[0].address", "not a unicast"),
    ({"hosts": [{"name": "ha", "address": "169.254.1.1"}]}, "spec.hosts[0].address", "not a unicast"),
    ({"hosts": [{"name": "ha", "address": "192.168.50.255"}]}, "spec.hosts[0].address", "broadcast"),
    ({"hosts": [{"name": "ha", "address": "192.168.50.0/24"}]}, "spec.hosts[0].address", "network or broadcast"),
    ({"hosts": [{"name": "ha", "address": "nope"}]}, "spec.hosts[0].address", "not an IPv4 address"),
    ({"hosts": [{"name": "ha"}]}, "spec.hosts[0].address", "is required"),
    ({"hosts": [{"name": "Ha", "address": "192.168.50.2"}]}, "spec.hosts[0].name", "RFC 1123"),
    ({"hosts": [{"name": "ha", "address": "192.168.50.2", "ip": "x"}]}, "spec.hosts[0].ip", "unknown field"),
    ({"hosts": [HOSTS[0], {"name": "hb", "address": "192.168.51.2"}]}, "spec.hosts[1].address",
     "not on the hosts' network 192.168.50.0/24"),
    ({"hosts": [{"name": "ha", "address": "10.244.9.9"}]}, "spec.hosts[0].address", "overlaps the pod CIDR"),
    ({"hosts": [{"name": "ha", "address": "172.18.200.9"}]}, "spec.hosts[0].address", "overlaps the node network"),
    ({"hosts": HOSTS, "externalHosts": [{"name": "c", "ip": "192.168.50.99"}]}, "spec.externalHosts[0].ip",
     "overlaps the hosts' network"),
    ({"hosts": "ha"}, "spec.hosts", "must be a list"),
])
def test_bad_hosts_name_the_field(overrides, field, text):
    with pytest.raises(SpecError) as err:
        parse_cluster(spec(**overrides), Source("cluster.yaml"))
    assert err.value.field == field, err.value
    assert text in err.value.message, err.value.message
    assert str(err.value).startswith("cluster.yaml: Cluster")
