"""A hand-built two-node cluster view (flannel-style VXLAN, or calico with policy) for the pure trace tests.

node-a 172.18.0.2 owns 10.244.0.0/24 (pods client 10.244.0.2, web-a 10.244.0.5); node-b 172.18.0.3 owns
10.244.1.0/24 (web-b 10.244.1.5). Service default/web 10.96.0.20:80 -> web-a, web-b :8080 (NodePort
30080); default/empty 10.96.0.30:80 has no endpoints (REJECT). External host ext 203.0.113.10.
"""

from __future__ import annotations

import yaml

from netsim.kernel.api import Fdb, Link, Neigh, Route
from netsim.model.errors import Source
from netsim.model.networkpolicy import parse_networkpolicy
from netsim.policy.model import NamespaceInfo, PodInfo, PolicyModel
from netsim.trace.resolve import TraceDestination, TraceSource
from netsim.trace.view import ClusterView, NodeKernelState, PodKernelState

WEB_PORTS = ((8080, "TCP"),)
MAC_A, MAC_B = "aa:aa:aa:aa:aa:01", "bb:bb:bb:bb:bb:02"


def rules(pod_cidr: str) -> str:
    return f"""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-WEB - [0:0]
:KUBE-EXT-WEB - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
:FLANNEL-POSTRTG - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-SVC-WEB
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-NODEPORTS -p tcp -m comment --comment default/web -m tcp --dport 30080 -j KUBE-EXT-WEB
-A KUBE-EXT-WEB -m comment --comment "masquerade traffic for default/web external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-WEB -j KUBE-SVC-WEB
-A KUBE-SVC-WEB -m comment --comment "default/web -> 10.244.0.5:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-A
-A KUBE-SVC-WEB -m comment --comment "default/web -> 10.244.1.5:8080" -j KUBE-SEP-B
-A KUBE-SEP-A -p tcp -m comment --comment default/web -m tcp -j DNAT --to-destination 10.244.0.5:8080
-A KUBE-SEP-B -p tcp -m comment --comment default/web -m tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s {pod_cidr} -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d {pod_cidr} -m comment --comment "flanneld masq" -j RETURN
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:cali-FORWARD - [0:0]
-A FORWARD -m comment --comment "cali:abc" -j cali-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.30/32 -p tcp -m comment --comment "default/empty has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A cali-FORWARD -m set --match-set cali40s:x src -j DROP
COMMIT
"""


def node(name: str, ip: str, idx: int, peer_idx: int, peer_ip: str, peer_mac: str) -> NodeKernelState:
    cidr, peer_cidr = f"10.244.{idx}.0/24", f"10.244.{peer_idx}.0/24"
    return NodeKernelState(
        name=name,
        ip=ip,
        netns=f"netsim-t-node-{name}",
        addrs=[("eth0", f"{ip}/16"), ("flannel.1", f"10.244.{idx}.0/32"), ("cni0", f"10.244.{idx}.1/24")],
        routes=[
            Route("default", via="172.18.0.1", dev="eth0"),
            Route(cidr, dev="cni0", scope="link"),
            Route(peer_cidr, via=f"10.244.{peer_idx}.0", dev="flannel.1", onlink=True),
            Route("172.18.0.0/16", dev="eth0", scope="link"),
        ],
        links={
            "eth0": Link("eth0", 2, "veth", 1500, "02:00:00:00:00:0" + str(idx), True),
            "cni0": Link("cni0", 3, "bridge", 1450, "02:00:00:00:01:0" + str(idx), True),
            "flannel.1": Link(
                "flannel.1",
                4,
                "vxlan",
                1450,
                MAC_A if idx == 0 else MAC_B,
                True,
                vxlan={"vni": 1, "port": 8472, "local": ip},
            ),
        },
        neighs=[Neigh("flannel.1", f"10.244.{peer_idx}.0", peer_mac, True)],
        fdbs=[Fdb("flannel.1", peer_mac, peer_ip, True)],
        iptables=rules(cidr),
    )


DENY_WEB = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-deny, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: friend}}}]
"""


def view(plugin: str = "flannel", policies: tuple[str, ...] = ()) -> ClusterView:
    pods = [
        PodKernelState("default/client", "10.244.0.2", "node-a", "netsim-t-pod-default-client", {"app": "client"}),
        PodKernelState(
            "default/web-a",
            "10.244.0.5",
            "node-a",
            "netsim-t-pod-default-web-a",
            {"app": "web"},
            ports=WEB_PORTS,
        ),
        PodKernelState(
            "default/web-b",
            "10.244.1.5",
            "node-b",
            "netsim-t-pod-default-web-b",
            {"app": "web"},
            ports=WEB_PORTS,
        ),
    ]
    model = PolicyModel(
        [NamespaceInfo("default")],
        [PodInfo(*p.key.split("/"), p.labels, p.ip, p.node) for p in pods],
        [parse_networkpolicy(yaml.safe_load(t), Source("t.yaml")) for t in policies],
    )
    nodes = {
        "node-a": node("node-a", "172.18.0.2", 0, 1, "172.18.0.3", MAC_B),
        "node-b": node("node-b", "172.18.0.3", 1, 0, "172.18.0.2", MAC_A),
    }
    return ClusterView(
        "t",
        plugin,
        "vxlan",
        {"node-a": "172.18.0.2", "node-b": "172.18.0.3"},
        pods,
        {"ext": "203.0.113.10"},
        "netsim-t-fabric",
        model,
        nodes=nodes,
        node_netns={n: v.netns for n, v in nodes.items()},
        host_netns={"ext": "netsim-t-host-ext"},
    )


CLIENT = TraceSource(
    "default/client", "pod", "netsim-t-pod-default-client", "10.244.0.2", "node-a", "default/client"
)
EXT = TraceSource("host/ext", "host", "netsim-t-host-ext", "203.0.113.10", None)
WEB_SVC = TraceDestination("svc/default/web", "service", "10.96.0.20", 80, "TCP", service="default/web")
EMPTY_SVC = TraceDestination("svc/default/empty", "service", "10.96.0.30", 80, "TCP", service="default/empty")
NODEPORT_A = TraceDestination("172.18.0.2", "ip", "172.18.0.2", 30080, "TCP")
WEB_B = TraceDestination("default/web-b", "pod", "10.244.1.5", 8080, "TCP", pod="default/web-b")
WEB_B_OTHER_PORT = TraceDestination("default/web-b", "pod", "10.244.1.5", 9999, "TCP", pod="default/web-b")
