"""Service/endpoint sets shared by the golden, interpreter and integration tests.

The node is node-1 (172.18.0.2, pod CIDR 10.244.1.0/24) in a cluster with pod network 10.244.0.0/16;
endpoints on node-1 are 10.244.1.x, others 10.244.2.x (node-2).
"""

from __future__ import annotations

from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort

NODE = NodeInfo("node-1", ("172.18.0.2",), "10.244.1.0/24")
NODE_IP = "172.18.0.2"
CONFIG = ProxyConfig(cluster_cidr="10.244.0.0/16")
EXTERNAL_CLIENT = "203.0.113.10"
POD_CLIENT = "10.244.1.50"


def local_ep(i: int, port: int = 8080, **kw) -> Endpoint:
    return Endpoint(f"10.244.1.{i}", port, "node-1", **kw)


def remote_ep(i: int, port: int = 8080, **kw) -> Endpoint:
    return Endpoint(f"10.244.2.{i}", port, "node-2", **kw)


def svc(name: str, ip: str, port: int = 80, ns: str = "default", **kw) -> ServicePort:
    return ServicePort(ns, name, cluster_ip=ip, port=port, **kw)


Scenario = tuple[list[ServicePort], dict[tuple[str, str], list[Endpoint]], ProxyConfig]


def _one(sp: ServicePort, eps: list[Endpoint], cfg: ProxyConfig = CONFIG) -> Scenario:
    return [sp], {sp.key: eps}, cfg


def scenarios() -> dict[str, Scenario]:
    """name -> (service ports, endpoints by port key, config). Each becomes golden/<name>.txt."""
    out: dict[str, Scenario] = {}
    out["clusterip_1ep"] = _one(svc("web", "10.96.0.20"), [remote_ep(1)])
    out["clusterip_3ep"] = _one(svc("web", "10.96.0.20"), [remote_ep(3), local_ep(2), remote_ep(1)])
    out["clusterip_10ep"] = _one(svc("web", "10.96.0.20"),
                                 [remote_ep(i) for i in range(1, 6)] + [local_ep(i) for i in range(1, 6)])
    http = svc("multi", "10.96.0.21", port_name="http")
    metrics = svc("multi", "10.96.0.21", port=9090, port_name="metrics")
    out["named_ports"] = ([http, metrics],
                          {http.key: [remote_ep(1)], metrics.key: [Endpoint("10.244.2.1", 9100, "node-2")]},
                          CONFIG)
    out["nodeport"] = _one(svc("np", "10.96.0.22", node_port=30080), [remote_ep(1), local_ep(1)])
    out["etp_local_with_local"] = _one(
        svc("lb-local", "10.96.0.23", node_port=30081, load_balancer_ips=["203.0.113.200"],
            external_traffic_policy="Local", health_check_node_port=32000),
        [remote_ep(1), local_ep(1)])
    out["etp_local_without_local"] = _one(
        svc("lb-local", "10.96.0.23", node_port=30081, load_balancer_ips=["203.0.113.200"],
            external_traffic_policy="Local", health_check_node_port=32000),
        [remote_ep(1)])
    out["itp_local"] = ([svc("itp-yes", "10.96.0.24", internal_traffic_policy="Local"),
                         svc("itp-no", "10.96.0.25", internal_traffic_policy="Local")],
                        {("default/itp-yes", "TCP"): [local_ep(1), remote_ep(1)],
                         ("default/itp-no", "TCP"): [remote_ep(2)]}, CONFIG)
    out["lb_source_ranges"] = _one(
        svc("lb-fw", "10.96.0.26", node_port=30082, load_balancer_ips=["203.0.113.201", "203.0.113.202"],
            load_balancer_source_ranges=["172.18.0.0/16", " 198.51.100.0/25"]),
        [remote_ep(1)])
    out["external_ips"] = _one(svc("ext", "10.96.0.27", external_ips=["192.0.2.10", "192.0.2.11"]),
                               [remote_ep(1), local_ep(1)])
    out["session_affinity"] = _one(svc("sticky", "10.96.0.28", session_affinity_timeout=10800),
                                   [remote_ep(1), local_ep(1)])
    out["no_endpoints"] = _one(
        svc("empty", "10.96.0.29", node_port=30083, external_ips=["192.0.2.12"],
            load_balancer_ips=["203.0.113.203"]), [])
    out["only_terminating"] = _one(
        svc("draining", "10.96.0.30"),
        [remote_ep(1, ready=False, serving=True, terminating=True),
         remote_ep(2, ready=False, serving=False, terminating=True)])
    dns_udp = svc("dns", "10.96.0.10", port=53, ns="kube-system", port_name="dns", protocol="UDP")
    dns_tcp = svc("dns", "10.96.0.10", port=53, ns="kube-system", port_name="dns-tcp", protocol="TCP")
    sctp = svc("sig", "10.96.0.31", port=3868, protocol="SCTP")
    out["udp_sctp"] = ([dns_udp, dns_tcp, sctp],
                       {dns_udp.key: [Endpoint("10.244.2.5", 53, "node-2"), Endpoint("10.244.1.5", 53, "node-1")],
                        dns_tcp.key: [Endpoint("10.244.2.5", 53, "node-2"), Endpoint("10.244.1.5", 53, "node-1")],
                        sctp.key: [remote_ep(1, port=3868)]}, CONFIG)
    headless = ServicePort("default", "db", port=5432, cluster_ip=None)
    out["headless_ignored"] = ([headless], {headless.key: [remote_ep(1, port=5432)]}, CONFIG)
    out["config_variants"] = _one(
        svc("np", "10.96.0.22", node_port=30080), [remote_ep(1)],
        ProxyConfig(cluster_cidr=None, masquerade_all=True, localhost_nodeports=False, nfacct=True,
                    random_fully=False, nodeport_addresses=("172.18.0.0/16",)))
    out.update(flag_scenarios())
    return out


ALT_NODE_IP = "192.168.1.2"  # a second address of node-1 (upstream's testNodeIPAlt plays the same part)
NODE_2IPS = NodeInfo("node-1", (NODE_IP, ALT_NODE_IP), "10.244.1.0/24")


def flag_scenarios() -> dict[str, Scenario]:
    """One scenario per kube-proxy flag setting spec.kubeProxy can make (golden/flag_*.txt), each on a
    Service whose rules show the flag: a NodePort Service with eTP=Local and a local and a remote endpoint
    (the detector appears in its SVC and EXT chains, the NodePort jump in KUBE-SERVICES)."""
    sp = svc("flags", "10.96.0.40", node_port=30090, external_traffic_policy="Local")
    eps = [remote_ep(1), local_ep(1)]

    def cfg(**kw) -> ProxyConfig:
        return ProxyConfig(**{"cluster_cidr": "10.244.0.0/16", **kw})

    variants = {
        "detect_cluster_cidr": cfg(),
        "detect_node_cidr": cfg(detect_local_mode="NodeCIDR"),
        "detect_bridge_interface": cfg(detect_local_mode="BridgeInterface", bridge_interface="cni0"),
        "detect_interface_prefix": cfg(detect_local_mode="InterfaceNamePrefix", interface_name_prefix="cali"),
        "detect_none": cfg(cluster_cidr=None),
        "masquerade_all": cfg(masquerade_all=True),
        "masquerade_bit": cfg(masquerade_bit=5),
        "localhost_nodeports_off": cfg(localhost_nodeports=False),
        "nodeport_addresses_cidrs": cfg(nodeport_addresses=("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64")),
        "nodeport_addresses_loopback": cfg(nodeport_addresses=("172.18.0.0/16", "127.0.0.0/8")),
        "nodeport_addresses_loopback_off": cfg(nodeport_addresses=("192.168.0.0/24", "127.0.0.1/32"),
                                               localhost_nodeports=False),
        "nodeport_addresses_primary": cfg(nodeport_addresses=("primary",)),
        "nodeport_addresses_zero": cfg(nodeport_addresses=("172.18.0.0/16", "0.0.0.0/0")),
        "nodeport_addresses_ipv6_only": cfg(nodeport_addresses=("2001:db8::/64",)),
    }
    return {f"flag_{name}": ([sp], {sp.key: eps}, c) for name, c in variants.items()}


def combined() -> Scenario:
    """Everything at once (distinct names), for interpreter and integration tests."""
    services: list[ServicePort] = []
    eps: dict[tuple[str, str], list[Endpoint]] = {}
    for name, (sps, e, cfg) in scenarios().items():
        if cfg is not CONFIG or name in ("etp_local_with_local", "clusterip_1ep", "clusterip_10ep"):
            continue
        services += sps
        eps.update(e)
    return services, eps, CONFIG
