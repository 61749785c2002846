"""kube-proxy rules on a real node namespace: ClusterIP from the node, NodePort from an external host with
masquerade, REJECT when a service has no endpoints, and a partial sync that changes one endpoint."""

from __future__ import annotations

import errno
import json
import socket
import threading

import pytest

from netsim import lifecycle, naming
from netsim.kernel.api import Route
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.node.proxy_agent import ProxyAgent
from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort

pytestmark = pytest.mark.root


def _make_pod(k, node_ns: str, pod_ns: str, ip: str, veth: str) -> None:
    """A calico-style hand-wired pod (the CNI plugins do this for real): /32, 169.254.1.1 gateway."""
    k.netns_create(pod_ns)
    k.veth_add(node_ns, veth, pod_ns, "eth0", mac="ee:ee:ee:ee:ee:ee")
    k.sysctl_set(node_ns, f"net.ipv4.conf.{veth}.proxy_arp", 1)
    k.addr_add(pod_ns, "eth0", f"{ip}/32")
    k.route_replace(pod_ns, Route(dst="169.254.1.1/32", dev="eth0", scope="link"))
    k.route_replace(pod_ns, Route(dst="default", via="169.254.1.1", dev="eth0"))
    k.route_replace(node_ns, Route(dst=f"{ip}/32", dev=veth, scope="link"))


def _serve(k, ns: str, port: int, name: str) -> socket.socket:
    srv = k.call_in(ns, lambda: socket.create_server(("0.0.0.0", port)))

    def loop() -> None:
        while True:
            try:
                conn, peer = srv.accept()
            except OSError:
                return
            conn.sendall(json.dumps({"pod": name, "clientIP": peer[0]}).encode() + b"\n")
            conn.close()
    threading.Thread(target=loop, daemon=True).start()
    return srv


def _connect(k, ns: str, ip: str, port: int) -> dict | int:
    def go() -> dict | int:
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((ip, port))
            return json.loads(s.makefile().readline())
        except ConnectionRefusedError:
            return errno.ECONNREFUSED
        except TimeoutError:
            return errno.ETIMEDOUT
        finally:
            s.close()
    return k.call_in(ns, go)


def test_proxy_agent_on_a_real_node(kernel, cluster_name):
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": cluster_name},
                          "spec": {"nodes": 1, "externalHosts": [{"name": "client", "ip": "203.0.113.10"}]}},
                         Source("<test>"))
    st = lifecycle.up(kernel, spec)
    node = st.nodes[0]
    pod_ns = naming.pod_ns(cluster_name, "default", "web")
    _make_pod(kernel, node["netns"], pod_ns, "10.244.0.5", "caliweb")
    srv = _serve(kernel, pod_ns, 8080, "default/web")
    try:
        agent = ProxyAgent(kernel, node["netns"], NodeInfo(node["name"], (node["ip"],), node["podCIDR"]),
                           ProxyConfig(cluster_cidr="10.244.0.0/16"))
        web = ServicePort("default", "web", cluster_ip="10.96.0.20", port=80, node_port=30080)
        empty = ServicePort("default", "empty", cluster_ip="10.96.0.21", port=80)
        eps = {web.key: [Endpoint("10.244.0.5", 8080, node["name"])], empty.key: []}
        first = agent.sync([web, empty], eps)
        assert first.full

        # Node -> ClusterIP (nat OUTPUT): DNAT to the pod; the node's own address is the client.
        got = _connect(kernel, node["netns"], "10.96.0.20", 80)
        assert isinstance(got, dict) and got["pod"] == "default/web"
        # External host -> NodePort with externalTrafficPolicy Cluster: masqueraded to the node IP.
        got = _connect(kernel, st.hosts[0]["netns"], node["ip"], 30080)
        assert isinstance(got, dict) and got["clientIP"] == node["ip"]
        # No endpoints: REJECT, i.e. connection refused rather than a timeout.
        assert _connect(kernel, node["netns"], "10.96.0.21", 80) == errno.ECONNREFUSED

        # externalTrafficPolicy Local keeps the client IP.
        local = ServicePort("default", "web", cluster_ip="10.96.0.20", port=80, node_port=30080,
                            external_traffic_policy="Local")
        second = agent.sync([local, empty], {local.key: eps[web.key], empty.key: []})
        assert not second.full
        got = _connect(kernel, st.hosts[0]["netns"], node["ip"], 30080)
        assert isinstance(got, dict) and got["clientIP"] == "203.0.113.10"

        # A full re-sync adds no second copy of the jump rules.
        agent.sync([local, empty], {local.key: eps[web.key], empty.key: []}, full=True)
        save = kernel.run(node["netns"], ["iptables-save", "-t", "nat"]).stdout
        assert save.count("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES") == 1
    finally:
        srv.close()
