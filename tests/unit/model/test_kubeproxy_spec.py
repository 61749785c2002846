"""spec.kubeProxy: kube-proxy's defaults and validation (pkg/proxy/apis/config/v1alpha1 defaults,
validation/validation.go and its validation_test.go cases), both spellings of the fields, one-line errors
that name the file and field, and the ProxyConfig every node's kube-proxy gets from it."""

from __future__ import annotations

import pytest
import yaml

from netsim.model.cluster import load_cluster_file, parse_cluster
from netsim.model.errors import Source, SpecError
from netsim.model.kubeproxy import KubeProxySpec, format_duration, parse_duration
from netsim.proxy.config import proxy_config
from netsim.proxy.model import NodeInfo


def cluster(kube_proxy=None, **network):
    spec = {"nodes": 2, **({"network": network} if network else {})}
    if kube_proxy is not None:
        spec["kubeProxy"] = kube_proxy
    return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "kp"},
                          "spec": spec}, Source("c.yaml"))


def error(kube_proxy) -> SpecError:
    with pytest.raises(SpecError) as exc:
        cluster(kube_proxy)
    return exc.value


def test_defaults_are_kube_proxys_except_min_sync_period() -> None:
    kp = cluster().kube_proxy
    assert kp == KubeProxySpec()
    assert (kp.mode, kp.detect_local_mode, kp.masquerade_all, kp.masquerade_bit, kp.localhost_nodeports) == \
        ("iptables", "ClusterCIDR", False, 14, True)
    assert (kp.sync_period, kp.min_sync_period) == (30.0, 0.0)  # kube-proxy: 30s and 1s (see the docstring)
    assert kp.nodeport_addresses == ()
    cfg = proxy_config(cluster())
    assert cfg.cluster_cidr == "10.244.0.0/16"  # kubeadm: clusterCIDR = podSubnet
    assert cluster().to_dict()["spec"].get("kubeProxy") is None


def test_v1alpha1_shape_copied_from_a_real_configmap() -> None:
    doc = yaml.safe_load("""
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
clientConnection: {kubeconfig: /var/lib/kube-proxy/kubeconfig.conf}
clusterCIDR: 10.244.0.0/16,fd00:10:244::/56
conntrack: {maxPerCore: 32768, min: 131072}
detectLocalMode: InterfaceNamePrefix
detectLocal: {bridgeInterface: "", interfaceNamePrefix: veth}
iptables: {masqueradeAll: true, masqueradeBit: 14, localhostNodePorts: false, minSyncPeriod: 1s, syncPeriod: 30s}
ipvs: {scheduler: ""}
mode: ""
nodePortAddresses: [172.18.0.0/16, "2001:db8::/64"]
""")
    kp = cluster(doc).kube_proxy
    assert kp.mode == "iptables"
    assert kp.cluster_cidr == "10.244.0.0/16"  # the IPv4 member of the dual-stack pair
    assert (kp.detect_local_mode, kp.interface_name_prefix, kp.bridge_interface) == ("InterfaceNamePrefix", "veth", "")
    assert kp.masquerade_all and not kp.localhost_nodeports
    assert (kp.min_sync_period, kp.sync_period) == (1.0, 30.0)
    assert kp.nodeport_addresses == ("172.18.0.0/16", "2001:db8::/64")


def test_flattened_spelling_and_agreeing_duplicates() -> None:
    kp = cluster({"masqueradeAll": True, "localhostNodePorts": False, "minSyncPeriod": "500ms",
                  "syncPeriod": "1m30s", "iptables": {"masqueradeAll": True}}).kube_proxy
    assert kp.masquerade_all and not kp.localhost_nodeports
    assert (kp.min_sync_period, kp.sync_period) == (0.5, 90.0)


def test_round_trip_through_to_dict() -> None:
    c = cluster({"clusterCIDR": "", "detectLocalMode": "BridgeInterface", "detectLocal": {"bridgeInterface": "cni0"},
                 "nodePortAddresses": ["primary"], "masqueradeAll": True, "minSyncPeriod": "2s", "syncPeriod": "1h",
                 "iptables": {"masqueradeBit": 5, "localhostNodePorts": False}})
    again = parse_cluster(c.to_dict(), Source("<state>"))
    assert again.kube_proxy == c.kube_proxy
    assert c.to_dict()["spec"]["kubeProxy"]["iptables"]["syncPeriod"] == "1h0m0s"


def test_detect_local_none_is_an_empty_cluster_cidr() -> None:
    """kube-proxy has no None mode; ClusterCIDR without a CIDR is its no-op detector."""
    c = cluster({"clusterCIDR": ""})
    assert c.kube_proxy.cluster_cidr == ""
    assert proxy_config(c).cluster_cidr is None
    assert proxy_config(c).local_detector(NodeInfo("node-1", ("172.18.0.2",), "10.244.0.0/24")) is None
    assert "leave clusterCIDR empty" in error({"detectLocalMode": "None"}).message


def test_cluster_cidr_is_normalised_and_reaches_the_config() -> None:
    c = cluster({"clusterCIDR": "10.244.1.7/16", "detectLocalMode": "NodeCIDR"})
    cfg = proxy_config(c)
    assert (cfg.cluster_cidr, cfg.detect_local_mode) == ("10.244.0.0/16", "NodeCIDR")


# Upstream's validation_test.go cases (TestValidateKubeProxyNodePortAddress and friends), as
# (kubeProxy section, field named, text of the message).
BAD = [
    ({"nodePortAddresses": ["foo"]}, "spec.kubeProxy.nodePortAddresses[0]", "must be a valid CIDR"),
    ({"nodePortAddresses": ["10.0.0.0/0", "1.2.3"]}, "spec.kubeProxy.nodePortAddresses[1]", "must be a valid CIDR"),
    ({"nodePortAddresses": ["127.0.0.1/32", "0", "1.2.3.0/24"]}, "spec.kubeProxy.nodePortAddresses[1]",
     "must be a valid CIDR"),
    ({"nodePortAddresses": ["127.0.0.1/32", "10.20.30.40", "1.2.3.0/24"]}, "spec.kubeProxy.nodePortAddresses[1]",
     "must be a valid CIDR"),
    ({"nodePortAddresses": ["::0", "::1", "2001:db8::/32"]}, "spec.kubeProxy.nodePortAddresses[0]",
     "must be a valid CIDR"),
    ({"nodePortAddresses": ["::1/128", "2001:db8::/32", "2001:db8:xyz/64"]}, "spec.kubeProxy.nodePortAddresses[2]",
     "must be a valid CIDR"),
    ({"nodePortAddresses": ["primary", "127.0.0.1/32"]}, "spec.kubeProxy.nodePortAddresses[0]",
     "can't use both 'primary' and CIDRs"),
    ({"nodePortAddresses": ["127.0.0.1/32", "primary"]}, "spec.kubeProxy.nodePortAddresses[1]",
     "can't use both 'primary' and CIDRs"),
    ({"detectLocalMode": "Guess"}, "spec.kubeProxy.detectLocalMode",
     'Unsupported value: "Guess": supported values: "ClusterCIDR", "NodeCIDR", "BridgeInterface", '
     '"InterfaceNamePrefix", ""'),
    ({"detectLocalMode": "InterfaceNamePrefix", "detectLocal": {"interfaceNamePrefix": ""}},
     "spec.kubeProxy.detectLocal.interfaceNamePrefix", "must not be empty"),
    ({"detectLocalMode": "BridgeInterface", "detectLocal": {"interfaceNamePrefix": "eth0"}},
     "spec.kubeProxy.detectLocal.bridgeInterface", "must not be empty"),
    ({"detectLocalMode": "BridgeInterface", "detectLocal": {"bridgeInterface": "a-very-long-bridge"}},
     "spec.kubeProxy.detectLocal.bridgeInterface", "not a usable interface name"),
    ({"detectLocalMode": "InterfaceNamePrefix", "detectLocal": {"interfaceNamePrefix": "fifteen-chars-x"}},
     "spec.kubeProxy.detectLocal.interfaceNamePrefix", "at most 14 characters"),
    ({"clusterCIDR": "192.168.59.0"}, "spec.kubeProxy.clusterCIDR",
     "must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)"),
    ({"clusterCIDR": "192.168.59.0/24,fd00:192:168::/64,10.0.0.0/16"}, "spec.kubeProxy.clusterCIDR",
     "only one CIDR allowed or a valid DualStack CIDR"),
    ({"clusterCIDR": "fd00:192:168::/64"}, "spec.kubeProxy.clusterCIDR", "single-stack IPv4"),
    ({"syncPeriod": "-5s"}, "spec.kubeProxy.syncPeriod", "must be greater than 0"),
    ({"iptables": {"syncPeriod": "0s"}}, "spec.kubeProxy.iptables.syncPeriod", "must be greater than 0"),
    ({"minSyncPeriod": "-1s"}, "spec.kubeProxy.minSyncPeriod", "must be greater than or equal to 0"),
    ({"syncPeriod": "1s", "minSyncPeriod": "5s"}, "spec.kubeProxy.syncPeriod",
     "must be greater than or equal to spec.kubeProxy.minSyncPeriod"),
    ({"minSyncPeriod": "45s"}, "spec.kubeProxy.syncPeriod", "must be greater than or equal to"),
    ({"syncPeriod": 30}, "spec.kubeProxy.syncPeriod", "must be a duration"),
    ({"syncPeriod": "30 seconds"}, "spec.kubeProxy.syncPeriod", "is not a duration"),
    ({"iptables": {"masqueradeBit": -10}}, "spec.kubeProxy.iptables.masqueradeBit", "must be within the range [0, 31]"),
    ({"iptables": {"masqueradeBit": 32}}, "spec.kubeProxy.iptables.masqueradeBit", "must be within the range [0, 31]"),
    ({"mode": "kernelspace"}, "spec.kubeProxy.mode", "must be iptables, ipvs, nftables or blank"),
    ({"mode": "nftables"}, "spec.kubeProxy.mode", "does not emulate yet"),
    ({"mode": "ipvs"}, "spec.kubeProxy.mode", "does not emulate yet"),
    ({"masqueradeAll": True, "iptables": {"masqueradeAll": False}}, "spec.kubeProxy.iptables.masqueradeAll",
     "contradicts spec.kubeProxy.masqueradeAll"),
    ({"masqueradeAll": "yes"}, "spec.kubeProxy.masqueradeAll", "must be true or false"),
    ({"iptables": {"masqueradeAl": True}}, "spec.kubeProxy.iptables.masqueradeAl", "unknown field"),
    ({"detectLocal": {"interfacePrefix": "veth"}}, "spec.kubeProxy.detectLocal.interfacePrefix", "unknown field"),
    ({"kind": "KubeletConfiguration"}, "spec.kubeProxy.kind", "not one of"),
    ({"proxyMode": "iptables"}, "spec.kubeProxy.proxyMode", "unknown field"),
]


@pytest.mark.parametrize("section, field, text", BAD, ids=[f"{i}-{b[1].rsplit('.', 1)[-1]}" for i, b in enumerate(BAD)])
def test_invalid(section, field, text) -> None:
    e = error(section)
    assert e.field == field, e.render()
    assert text in e.message, e.render()
    line = e.render()
    assert "\n" not in line and line.startswith("c.yaml: Cluster kp: field " + field)


@pytest.mark.parametrize("good", [
    {"nodePortAddresses": []}, {"nodePortAddresses": ["127.0.0.0/8"]}, {"nodePortAddresses": ["0.0.0.0/0"]},
    {"nodePortAddresses": ["::/0"]}, {"nodePortAddresses": ["127.0.0.1/32", "1.2.3.0/24"]},
    {"nodePortAddresses": ["primary"]}, {"nodePortAddresses": ["10.20.0.0/16", "100.200.0.0/16"]},
    {"detectLocalMode": "BridgeInterface", "detectLocal": {"bridgeInterface": "avz"}},
    {"detectLocalMode": "InterfaceNamePrefix", "detectLocal": {"interfaceNamePrefix": "vethabcde"}},
    {"detectLocalMode": ""}, {"mode": ""}, {"mode": "iptables"}, {"syncPeriod": "10s", "minSyncPeriod": "10s"},
    {"minSyncPeriod": "0s"}, {"minSyncPeriod": "0"}, {"iptables": {"masqueradeBit": 0}},
])
def test_valid(good) -> None:
    cluster(good)


def test_durations_as_go_parses_and_prints_them() -> None:
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("2h22m") == 2 * 3600 + 22 * 60
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("250ms") == 0.25
    assert parse_duration("0") == 0.0
    assert parse_duration("-5s") == -5.0
    for bad in ("", "5", "s", "1x", "1s5"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert [format_duration(x) for x in (0, 0.5, 30, 90, 3600, 1.5)] == ["0s", "500ms", "30s", "1m30s", "1h0m0s",
                                                                          "1.5s"]


def test_file_error_is_one_line_naming_file_and_field(tmp_path) -> None:
    """What `netsim up -f` prints (exit 2, before anything is built): file, object and field on one line."""
    f = tmp_path / "c.yaml"
    f.write_text("apiVersion: netsim/v1alpha1\nkind: Cluster\nmetadata: {name: kpbad}\n"
                 "spec:\n  kubeProxy:\n    mode: nftables\n")
    with pytest.raises(SpecError) as exc:
        load_cluster_file(str(f))
    assert exc.value.exit_code == 2
    line = exc.value.render()
    assert "\n" not in line and line.startswith(f"{f}: Cluster kpbad: field spec.kubeProxy.mode: ")


def test_route_localnet_only_with_localhost_node_ports() -> None:
    """kube-proxy sets route_localnet=1 only when localhost NodePorts are on (NewProxier)."""
    from netsim.fabric import node_sysctls
    key = "net.ipv4.conf.all.route_localnet"
    assert (key, "1") in node_sysctls(cluster())
    assert key not in dict(node_sysctls(cluster({"iptables": {"localhostNodePorts": False}})))
    assert key not in dict(node_sysctls(cluster({"nodePortAddresses": ["primary"]})))
    assert (key, "1") in node_sysctls(cluster({"nodePortAddresses": ["172.18.0.0/16", "127.0.0.0/8"]}))
