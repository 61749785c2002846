"""Pod connectivity on the real kernel for every plugin x backend: two nodes on an underlay bridge,
pods wired by our CNI plugins, node daemons programming the overlay or routes.

Checks same-node and cross-node ping and TCP, and for VXLAN the path MTU: a full-size packet with DF set
(pod MTU 1450) crosses the overlay, a larger one does not leave the pod. Every namespace is named
`netsim-tcx<rand>-...` (the CniCluster of conftest.py) and removed in its finaliser, also when a test fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cni_plugins import calico, flannel
from cni_plugins.skel import invoke

pytestmark = pytest.mark.root

NODES = {"a": "172.31.0.2", "b": "172.31.0.3"}


@pytest.fixture
def cluster(cni_cluster):
    """Two nodes on the underlay (the shared CniCluster of conftest.py)."""
    for node, ip in NODES.items():
        cni_cluster.add_node(node, ip)
    return cni_cluster


COMBOS = [("flannel", "vxlan"), ("flannel", "host-gw"), ("calico", "vxlan"), ("calico", "direct"),
          ("canal", "vxlan"), ("canal", "host-gw")]


@pytest.mark.parametrize("plugin,backend", COMBOS, ids=[f"{p}-{b}" for p, b in COMBOS])
def test_pod_connectivity(cluster, plugin, backend):
    c = cluster
    cni, conf = c.start_network(plugin, backend)
    a1, a2, b1 = c.make_pod("a1"), c.make_pod("a2"), c.make_pod("b1")
    ip = {}
    for pod, node in ((a1, "a"), (a2, "a"), (b1, "b")):
        res = invoke(cni, "ADD", pod, conf(node), c.kernel)
        ip[pod.container_id] = res["ips"][0]["address"].split("/")[0]
        assert invoke(cni, "CHECK", pod, {**conf(node), "prevResult": res}, c.kernel) == {}
    a1_ip, a2_ip, b1_ip = ip[a1.container_id], ip[a2.container_id], ip[b1.container_id]

    assert c.ping(a1.netns_name, a2_ip, attempts=1), "same-node ping"
    assert c.ping(a1.netns_name, b1_ip, attempts=1), "cross-node ping"
    assert c.ping(b1.netns_name, a2_ip, attempts=1), "cross-node ping back"
    # pod source addresses are kept end to end (no masquerade between pods)
    assert c.tcp(a1.netns_name, b1.netns_name, b1_ip) == a1_ip
    assert c.tcp(a2.netns_name, a1.netns_name, a1_ip) == a2_ip
    # node -> remote pod works too
    assert c.kernel.run(c.ns("a"), ["ping", "-c1", "-W2", b1_ip], check=False).returncode == 0

    if backend == "vxlan":
        assert c.ping(a1.netns_name, b1_ip, attempts=1, size=1450 - 28), "full-size DF packet crosses the overlay"
        assert not c.ping(a1.netns_name, b1_ip, attempts=1, size=1450 - 28 + 1), "a larger DF packet must not"
    else:
        assert c.ping(a1.netns_name, b1_ip, attempts=1, size=1500 - 28)

    # DEL tears down: the pod loses connectivity, a second DEL is fine
    invoke(cni, "DEL", b1, conf("b"), c.kernel)
    invoke(cni, "DEL", b1, conf("b"), c.kernel)
    assert not c.ping(a1.netns_name, b1_ip, attempts=1)


def test_flannel_node_removal_on_real_kernel(cluster):
    c = cluster
    net = flannel.FlannelNetConf()
    leases = [flannel.lease_for(c.name, n, ip, f"10.244.{i}.0/24", net) for i, (n, ip) in enumerate(NODES.items())]
    d = flannel.Flanneld(c.kernel, c.ctx("a"), net)
    d.sync(leases)
    d.sync(leases)  # resync: no duplicates anywhere
    k, ns = c.kernel, c.ns("a")
    assert [(n.ip, n.permanent) for n in k.neighs(ns, "flannel.1")] == [("10.244.1.0", True)]
    assert [(f.mac, f.dst) for f in k.fdbs(ns, "flannel.1") if f.dst] == [(leases[1].vtep_mac, "172.31.0.3")]
    assert [(r.dst, r.via, r.onlink) for r in k.routes(ns) if r.dev == "flannel.1"] == [
        ("10.244.1.0/24", "10.244.1.0", True)]
    link = k.link_get(ns, "flannel.1")
    assert (link.mtu, link.vxlan["vni"], link.vxlan["port"], link.vxlan["learning"]) == (1450, 1, 8472, False)
    saved = k.run(ns, ["iptables-save"]).stdout
    assert saved.count("-j FLANNEL-POSTRTG") == 1 and saved.count("-j FLANNEL-FWD") == 1
    assert saved.count("-A FLANNEL-POSTRTG") == 6
    d.sync(leases[:1])
    assert k.neighs(ns, "flannel.1") == [] and [f for f in k.fdbs(ns, "flannel.1") if f.dst] == []
    assert [r for r in k.routes(ns) if r.dev == "flannel.1"] == []


@pytest.mark.parametrize("plugin", ["flannel", "calico", "canal"])
def test_exec_path_in_node_netns(cluster, plugin):
    """The console script run the way kubelet runs it: inside the node netns, env + stdin, JSON out.
    Without the `netsim` key it finds its node from the namespace it runs in."""

    c = cluster
    cni, conf = c.start_network(plugin, "vxlan")
    pod = c.make_pod("x1")
    exe = str(Path(sys.executable).with_name(f"netsim-{plugin}"))
    body = conf("a")
    body["netsim"] = {"cluster": c.name, "node": "a", "stateDir": str(c.state_dir)}
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": pod.container_id, "CNI_NETNS": pod.netns, "CNI_IFNAME": "eth0",
           "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=x1",
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    proc = c.kernel.run(c.ns("a"), [exe], input=json.dumps(body), env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(proc.stdout)
    assert res["cniVersion"] == "1.0.0" and res["interfaces"][-1]["sandbox"] == pod.netns
    assert c.kernel.link_get(pod.netns_name, "eth0") is not None
    # a second ADD for the same attachment is an error object with a non-zero exit
    proc = c.kernel.run(c.ns("a"), [exe], input=json.dumps(body), env=env, check=False)
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 101
    # DEL without the netsim key: node found from the netns the plugin runs in (state dir default is
    # /run/netsim/<c>, so only the kernel side is checked here)
    del body["netsim"]
    if plugin == "flannel":
        body["ipam"] = {"dataDir": str(c.ctx("a").node_dir / "cni" / "networks")}
    elif plugin == "canal":
        body["ipam"] = {**body["ipam"], "dataDir": str(c.ctx("a").node_dir / "cni" / "networks")}
    else:
        body["ipam"] = {**body["ipam"], "dataDir": str(c.state_dir / "calico-ipam")}
    proc = c.kernel.run(c.ns("a"), [exe], input=json.dumps(body), env={**env, "CNI_COMMAND": "DEL"}, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert c.kernel.link_get(pod.netns_name, "eth0") is None
    if plugin == "calico":
        ipam = calico.CalicoIpam(c.state_dir / "calico-ipam")
        assert [a for a in ipam.allocations() if a.handle.startswith("podnet.")] == []
    else:
        assert not list((c.ctx("a").node_dir / "cni" / "networks" / "podnet").glob("10.*"))
