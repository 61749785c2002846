"""The kubelet's pod resolv.conf (ClusterFirst, Default, None, dnsConfig, limits), file writing, env vars."""

from __future__ import annotations

import pytest
from dns_fixtures import svc

from netsim.dns.resolvconf import (
    DnsConfig,
    env_for_pod,
    parse_resolv_conf,
    pod_dns_config,
    pod_resolv_conf,
    remove_resolv_conf,
    resolv_conf_path,
    service_env_vars,
    write_resolv_conf,
)
from netsim.model.errors import Source, SpecError
from netsim.model.pod import Pod, parse_pod

NODE = DnsConfig(("10.255.255.53", "1.1.1.1"), ("corp.example",), ("timeout:2",))


def pod(ns: str = "team-a", **spec) -> Pod:
    spec.setdefault("containers", [{"name": "c"}])
    return parse_pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
                      "spec": spec}, Source("<test>"))


def test_cluster_first_is_the_kube_dns_vip_search_path_and_ndots():
    text = pod_resolv_conf(pod(), cluster_dns=["10.96.0.10"], host=NODE)
    assert text == ("search team-a.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                    "nameserver 10.96.0.10\n"
                    "options ndots:5\n")


def test_cluster_first_without_node_search_domains_and_a_custom_domain():
    cfg = pod_dns_config(pod("default"), cluster_dns=["10.96.0.10"], cluster_domain="corp.internal", host=None)
    assert cfg == DnsConfig(("10.96.0.10",), ("default.svc.corp.internal", "svc.corp.internal",
                                              "corp.internal"), ("ndots:5",))


def test_host_network_cluster_first_falls_back_to_default_unless_with_host_net():
    assert pod_dns_config(pod(hostNetwork=True), cluster_dns=["10.96.0.10"], host=NODE) == NODE
    cfg = pod_dns_config(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), cluster_dns=["10.96.0.10"],
                         host=NODE)
    assert cfg.nameservers == ("10.96.0.10",)


def test_no_cluster_dns_configured_falls_back_to_default():
    assert pod_dns_config(pod(), cluster_dns=[], host=NODE) == NODE


def test_default_policy_is_the_nodes_file_or_localhost_without_one():
    assert pod_dns_config(pod(dnsPolicy="Default"), cluster_dns=["10.96.0.10"], host=NODE) == NODE
    assert pod_dns_config(pod(dnsPolicy="Default"), cluster_dns=["10.96.0.10"], host=None) == DnsConfig(
        ("127.0.0.1",), (".",), ())


def test_none_policy_uses_only_dns_config():
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.1"], "searches": ["a.example."],
                                         "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    assert pod_resolv_conf(p, cluster_dns=["10.96.0.10"], host=NODE) == (
        "search a.example\nnameserver 192.0.2.1\noptions ndots:2 edns0\n")


def test_none_policy_needs_a_nameserver():
    with pytest.raises(SpecError) as e:
        pod_dns_config(pod(dnsPolicy="None"), cluster_dns=["10.96.0.10"])
    assert e.value.field == "spec.dnsConfig.nameservers" and e.value.obj == "Pod team-a/p"


def test_dns_config_is_merged_into_cluster_first():
    p = pod(dnsConfig={"nameservers": ["10.96.0.10", "192.0.2.1"], "searches": ["svc.cluster.local", "x.example"],
                       "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]})
    cfg = pod_dns_config(p, cluster_dns=["10.96.0.10"], host=None)
    assert cfg.nameservers == ("10.96.0.10", "192.0.2.1")
    assert cfg.searches == ("team-a.svc.cluster.local", "svc.cluster.local", "cluster.local", "x.example")
    assert cfg.options == ("ndots:1", "single-request")


def test_limits_three_nameservers_and_search_length():
    p = pod(dnsConfig={"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
                       "searches": [f"d{i}.{'x' * 60}.example" for i in range(40)]})
    cfg = pod_dns_config(p, cluster_dns=["10.96.0.10"], host=None)
    assert cfg.nameservers == ("10.96.0.10", "192.0.2.1", "192.0.2.2")
    assert len(cfg.searches) <= 32 and len(" ".join(cfg.searches)) <= 2048
    assert cfg.searches[0] == "team-a.svc.cluster.local"


def test_bad_dns_config_names_the_field():
    with pytest.raises(SpecError) as e:
        pod_dns_config(pod(dnsConfig={"options": [{"value": "1"}]}), cluster_dns=["10.96.0.10"])
    assert e.value.field == "spec.dnsConfig.options[0].name"


def test_parse_resolv_conf_like_the_kubelet():
    cfg = parse_resolv_conf("# c\nnameserver 10.0.0.1\nsearch a. b\nnameserver 10.0.0.2\nsearch c.example.\n"
                            "options ndots:1\noptions timeout:1 attempts:2\nnameserver\n")
    assert cfg == DnsConfig(("10.0.0.1", "10.0.0.2"), ("c.example",), ("timeout:1", "attempts:2"))


def test_write_and_remove_under_a_netns_etc_root(tmp_path):
    path = write_resolv_conf("netsim-x-pod-a-b", "nameserver 10.96.0.10\n", root=str(tmp_path))
    assert path == tmp_path / "netsim-x-pod-a-b" / "resolv.conf"
    assert path.read_text() == "nameserver 10.96.0.10\n" and oct(path.stat().st_mode & 0o777) == "0o644"
    write_resolv_conf("netsim-x-pod-a-b", "nameserver 10.96.0.11\n", root=str(tmp_path))
    assert path.read_text() == "nameserver 10.96.0.11\n"
    assert [p.name for p in path.parent.iterdir()] == ["resolv.conf"]  # no temp files left
    assert remove_resolv_conf("netsim-x-pod-a-b", root=str(tmp_path)) is True
    assert not path.parent.exists()
    assert remove_resolv_conf("netsim-x-pod-a-b", root=str(tmp_path)) is False


def test_remove_keeps_a_directory_with_other_files(tmp_path):
    write_resolv_conf("n", "x\n", root=str(tmp_path))
    (tmp_path / "n" / "hosts").write_text("127.0.0.1 localhost\n")
    remove_resolv_conf("n", root=str(tmp_path))
    assert (tmp_path / "n" / "hosts").exists()


@pytest.mark.parametrize("bad", ["", "a/b", "..", "."])
def test_bad_netns_names_are_rejected(bad):
    with pytest.raises(ValueError):
        resolv_conf_path(bad)


def test_service_env_vars_like_the_kubelet():
    services = [
        svc("redis-master", "team-a", clusterIP="10.0.0.11", ports=[{"port": 6379}]),
        svc("web", "team-a", clusterIP="10.0.0.12",
            ports=[{"name": "http", "port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
        svc("headless", "team-a", clusterIP="None", ports=[{"name": "x", "port": 1}]),
        svc("ext", "team-a", type="ExternalName", externalName="example.com"),
        svc("elsewhere", "team-b", clusterIP="10.0.0.13", ports=[{"port": 1}]),
        svc("kubernetes", "default", clusterIP="10.96.0.1", ports=[{"name": "https", "port": 443}]),
    ]
    env = service_env_vars(services, "team-a")
    assert {k: v for k, v in env.items() if k.startswith("REDIS_MASTER")} == {
        "REDIS_MASTER_SERVICE_HOST": "10.0.0.11",
        "REDIS_MASTER_SERVICE_PORT": "6379",
        "REDIS_MASTER_PORT": "tcp://10.0.0.11:6379",
        "REDIS_MASTER_PORT_6379_TCP": "tcp://10.0.0.11:6379",
        "REDIS_MASTER_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_MASTER_PORT_6379_TCP_PORT": "6379",
        "REDIS_MASTER_PORT_6379_TCP_ADDR": "10.0.0.11",
    }
    assert env["WEB_SERVICE_PORT"] == "80"
    assert env["WEB_SERVICE_PORT_HTTP"] == "80" and env["WEB_SERVICE_PORT_DNS_UDP"] == "53"
    assert env["WEB_PORT"] == "tcp://10.0.0.12:80"
    assert env["WEB_PORT_53_UDP"] == "udp://10.0.0.12:53" and env["WEB_PORT_53_UDP_PROTO"] == "udp"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert not any(k.startswith(("HEADLESS_", "EXT_", "ELSEWHERE_")) for k in env)


def test_enable_service_links_false_keeps_only_the_master_service():
    services = [svc("web", "team-a", clusterIP="10.0.0.12", ports=[{"port": 80}]),
                svc("kubernetes", "default", clusterIP="10.96.0.1", ports=[{"name": "https", "port": 443}])]
    env = env_for_pod(pod(enableServiceLinks=False), services)
    assert sorted({k.split("_")[0] for k in env}) == ["KUBERNETES"]
    assert "WEB_SERVICE_HOST" in env_for_pod(pod(), services)


def test_a_namespace_service_named_kubernetes_wins_over_the_master():
    services = [svc("kubernetes", "default", clusterIP="10.96.0.1", ports=[{"port": 443}]),
                svc("kubernetes", "team-a", clusterIP="10.0.0.99", ports=[{"port": 8443}])]
    assert service_env_vars(services, "team-a")["KUBERNETES_SERVICE_HOST"] == "10.0.0.99"
    assert service_env_vars(list(reversed(services)), "team-a")["KUBERNETES_SERVICE_HOST"] == "10.0.0.99"
    assert service_env_vars(services, "team-b")["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
