"""spec.kubeProxy reaches every node's kube-proxy and changes what the kernel does (root).

One two-node flannel cluster whose kube-proxy runs with masqueradeAll, localhostNodePorts=false,
nodePortAddresses=[primary] and syncPeriod=1s. Expected, as kube-proxy's iptables mode behaves with those
flags (pkg/proxy/iptables/proxier.go; upstream's TestNodePorts / masquerade tests):

- masqueradeAll: a pod's connection to a ClusterIP is SNATed, the server sees an address of the node
  (by default the pod keeps its own address: test_service_datapath.py);
- localhostNodePorts=false: 127.0.0.1:NodePort inside a node is not DNATed (refused: nothing listens);
- nodePortAddresses=[primary]: a NodePort answers on the node IP, not on the node's other addresses (the
  cni0 address here, which answers by default because NodePorts match `--dst-type LOCAL`);
- syncPeriod: kube-proxy's periodic check finds its flushed chains and writes them again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from svc_cluster import HOST_IP, describe, node_addresses, node_ip, node_port, served

from tests.conftest import live_cluster

pytestmark = pytest.mark.root

KUBE_PROXY = {"masqueradeAll": True, "nodePortAddresses": ["primary"], "syncPeriod": "1s",
              "iptables": {"localhostNodePorts": False}}

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: node-2
  containers: [{name: web, image: agnhost, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-1
  containers: [{name: client, image: busybox}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@contextlib.contextmanager
def flagged_cluster() -> Iterator:
    spec = {"nodes": 2, "externalHosts": [{"name": "client", "ip": HOST_IP}], "kubeProxy": KUBE_PROXY}
    with live_cluster(None, "kp", spec, timeout=90) as c:
        yield c


@pytest.fixture(scope="module")
def cluster():
    with flagged_cluster() as c:
        c.apply(MANIFESTS)
        yield c


def test_masquerade_all_snats_pod_traffic_to_cluster_ip(cluster):
    res = cluster.probe(frm="default/client", to="svc/default/web", count=3)
    assert all(r.connected for r in res), describe(res)
    pod_ip = cluster.sources("default/client")[0].ip
    mine = node_addresses(cluster, "node-1")
    assert {r.client_ip for r in res} <= mine and pod_ip not in {r.client_ip for r in res}, describe(res)


def test_localhost_node_port_is_refused_inside_a_node(cluster):
    np = node_port(cluster, "web")
    res = cluster.probe(frm="node/node-1", to=f"127.0.0.1:{np}", timeout=1.0)
    assert res[0].outcome == "refused", describe(res)
    # kube-proxy sets route_localnet only for localhost NodePorts; with them off the node keeps 0.
    ns = cluster.state.node("node-1")["netns"]
    assert cluster.kernel.sysctl_get(ns, "net.ipv4.conf.all.route_localnet").strip() == "0"
    # The node's own IP still works (node to NodePort), masqueraded.
    res = cluster.probe(frm="node/node-1", to=f"{node_ip(cluster, 'node-1')}:{np}", count=2)
    assert all(r.connected for r in res) and set(served(res)) == {"default/web"}, describe(res)


def test_node_port_addresses_primary_answers_on_the_node_ip_only(cluster):
    np = node_port(cluster, "web")
    res = cluster.probe(frm="host/client", to=f"{node_ip(cluster, 'node-1')}:{np}", count=2)
    assert all(r.connected for r in res), describe(res)
    # node-1's cni0 address (the client pod made it) is local to node-1 but outside nodePortAddresses.
    cni0 = cluster.kernel.addrs(cluster.state.node("node-1")["netns"], "cni0")
    assert cni0, "node-1 has no cni0 address"
    other = cni0[0][1].split("/")[0]
    res = cluster.probe(frm="node/node-2", to=f"{other}:{np}", timeout=1.0)
    assert res[0].outcome == "refused", describe(res)
    nat = cluster.exec("node/node-1", ["iptables-save", "-t", "nat"]).stdout
    jumps = [ln for ln in nat.splitlines() if ln.startswith("-A KUBE-SERVICES") and ln.endswith("-j KUBE-NODEPORTS")]
    assert len(jumps) == 1 and f"-d {node_ip(cluster, 'node-1')}/32 " in jumps[0], jumps


def test_sync_period_restores_flushed_rules(cluster):
    ns = cluster.state.node("node-1")["netns"]
    cluster.kernel.run(ns, ["iptables", "-w", "-t", "nat", "-F", "KUBE-MARK-MASQ"])
    assert "-A KUBE-MARK-MASQ" not in cluster.kernel.run(ns, ["iptables", "-t", "nat", "-S", "KUBE-MARK-MASQ"]).stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "-A KUBE-MARK-MASQ" in cluster.kernel.run(ns, ["iptables", "-t", "nat", "-S", "KUBE-MARK-MASQ"]).stdout:
            break
        time.sleep(0.2)
    else:
        pytest.fail("kube-proxy did not restore KUBE-MARK-MASQ within 10 s (syncPeriod 1s)")
    res = cluster.probe(frm="default/client", to="svc/default/web", count=2)
    assert all(r.connected for r in res), describe(res)
