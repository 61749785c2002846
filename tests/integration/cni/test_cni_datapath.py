"""Pod connectivity on the real kernel for every plugin x backend: two nodes on an underlay bridge,
pods wired by our CNI plugins, node daemons programming the overlay or routes.

Checks same-node and cross-node ping and TCP, and for VXLAN the path MTU: a full-size packet with DF set
(pod MTU 1450) crosses the overlay, a larger one does not leave the pod. Every namespace is named
`netsim-tcni<rand>-...` and removed in the fixture finaliser, also when a test fails.
"""

from __future__ import annotations

import json
import secrets
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from cni_plugins import calico, canal, flannel
from cni_plugins.common import NodeContext, node_netns
from cni_plugins.skel import invoke
from cni_plugins.types import CniArgs
from netsim.kernel.api import Route

pytestmark = pytest.mark.root

NODES = {"a": "172.31.0.2", "b": "172.31.0.3"}
UNDERLAY_GW = "172.31.0.1"


@dataclass
class Cluster:
    name: str
    kernel: object
    state_dir: Path

    def ctx(self, node: str) -> NodeContext:
        return NodeContext(self.name, node, str(self.state_dir))

    def ns(self, node: str) -> str:
        return node_netns(self.name, node)


@pytest.fixture
def cluster(tmp_path):
    from netsim.kernel.linux import LinuxKernel

    name = f"tcni{secrets.token_hex(3)}"
    k = LinuxKernel()
    c = Cluster(name, k, tmp_path / "state")
    try:
        fabric = f"netsim-{name}-fabric"
        k.netns_create(fabric)
        k.bridge_add(fabric, "underlay", up=True)
        k.addr_add(fabric, "underlay", f"{UNDERLAY_GW}/24")  # default gateway of the nodes
        for node, ip in NODES.items():
            ns = c.ns(node)
            k.netns_create(ns)
            k.veth_add(ns, "eth0", fabric, f"{node}-eth0", mtu=1500)
            k.link_set(fabric, f"{node}-eth0", master="underlay", up=True)
            k.addr_add(ns, "eth0", f"{ip}/24")
            k.route_replace(ns, Route(dst="default", via=UNDERLAY_GW, dev="eth0"))
            k.sysctl_set(ns, "net.ipv4.ip_forward", 1)
        yield c
    finally:
        for ns in k.netns_list(f"netsim-{name}-"):
            k.netns_delete(ns)
        k.close()


def make_pod(c: Cluster, name: str) -> CniArgs:
    ns = f"netsim-{c.name}-pod-default-{name}"
    c.kernel.netns_create(ns)
    return CniArgs(container_id=f"ctr{name}{secrets.token_hex(4)}", netns=f"/run/netns/{ns}", ifname="eth0",
                   args={"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": name}, path=("/opt/cni/bin",))


def start_network(c: Cluster, plugin: str, backend: str):
    """Run the node daemons; returns (CNI plugin, conf factory)."""
    if plugin in ("flannel", "canal"):
        net = flannel.FlannelNetConf(backend=backend)
        leases = [flannel.lease_for(c.name, n, ip, f"10.244.{i}.0/24", net) for i, (n, ip) in enumerate(NODES.items())]
        for n in NODES:
            flannel.Flanneld(c.kernel, c.ctx(n), net).sync(leases)
        mod = flannel if plugin == "flannel" else canal
        extra = {} if plugin == "flannel" else {"ipam": {"type": "host-local", "subnet": "usePodCidr"}}
    else:
        net = calico.CalicoNetConf(backend=backend)
        nodes = [calico.CalicoNode(n, ip) for n, ip in NODES.items()]
        daemons = [calico.CalicoNodeDaemon(c.kernel, c.ctx(n), net, ip) for n, ip in NODES.items()]
        for d in daemons:
            d.start()
        for d in daemons:
            d.sync(nodes)
        mod = calico
        extra = {"ipam": {"type": "calico-ipam"}, "backend": backend}

    def conf(node: str) -> dict:
        return {"cniVersion": "1.0.0", "name": "podnet", "type": f"netsim-{plugin}",
                "netsim": {"cluster": c.name, "node": node, "stateDir": str(c.state_dir)}, **extra}

    return mod.PLUGIN, conf


def ping(c: Cluster, pod: CniArgs, ip: str, size: int | None = None) -> bool:
    argv = ["ping", "-c", "1", "-W", "2", "-n"]
    if size is not None:
        argv += ["-M", "do", "-s", str(size)]
    return c.kernel.run(pod.netns_name, [*argv, ip], check=False).returncode == 0


def tcp(c: Cluster, client: CniArgs, server: CniArgs, ip: str, port: int = 8080) -> bytes:
    """Listen in `server`'s netns, connect from `client`'s, return what the server sent."""
    k = c.kernel
    srv = k.call_in(server.netns_name, lambda: socket.create_server((ip, port)))
    srv.settimeout(5)

    def serve() -> None:
        try:
            conn, addr = srv.accept()
            conn.sendall(f"hello {addr[0]}".encode())
            conn.close()
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        cli = k.call_in(client.netns_name, lambda: socket.create_connection((ip, port), timeout=5))
        data = cli.recv(100)
        cli.close()
        return data
    finally:
        t.join(5)
        srv.close()


COMBOS = [("flannel", "vxlan"), ("flannel", "host-gw"), ("calico", "vxlan"), ("calico", "direct"),
          ("canal", "vxlan"), ("canal", "host-gw")]


@pytest.mark.parametrize("plugin,backend", COMBOS, ids=[f"{p}-{b}" for p, b in COMBOS])
def test_pod_connectivity(cluster, plugin, backend):
    c = cluster
    cni, conf = start_network(c, plugin, backend)
    a1, a2, b1 = make_pod(c, "a1"), make_pod(c, "a2"), make_pod(c, "b1")
    ip = {}
    for pod, node in ((a1, "a"), (a2, "a"), (b1, "b")):
        res = invoke(cni, "ADD", pod, conf(node), c.kernel)
        ip[pod.container_id] = res["ips"][0]["address"].split("/")[0]
        assert invoke(cni, "CHECK", pod, {**conf(node), "prevResult": res}, c.kernel) == {}
    a1_ip, a2_ip, b1_ip = ip[a1.container_id], ip[a2.container_id], ip[b1.container_id]

    assert ping(c, a1, a2_ip), "same-node ping"
    assert ping(c, a1, b1_ip), "cross-node ping"
    assert ping(c, b1, a2_ip), "cross-node ping back"
    # pod source addresses are kept end to end (no masquerade between pods)
    assert tcp(c, a1, b1, b1_ip) == f"hello {a1_ip}".encode()
    assert tcp(c, a2, a1, a1_ip) == f"hello {a2_ip}".encode()
    # node -> remote pod works too
    assert c.kernel.run(c.ns("a"), ["ping", "-c1", "-W2", b1_ip], check=False).returncode == 0

    if backend == "vxlan":
        assert ping(c, a1, b1_ip, size=1450 - 28), "full-size DF packet crosses the overlay"
        assert not ping(c, a1, b1_ip, size=1450 - 28 + 1), "a larger DF packet must not"
    else:
        assert ping(c, a1, b1_ip, size=1500 - 28)

    # DEL tears down: the pod loses connectivity, a second DEL is fine
    invoke(cni, "DEL", b1, conf("b"), c.kernel)
    invoke(cni, "DEL", b1, conf("b"), c.kernel)
    assert not ping(c, a1, b1_ip)


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
    cni, conf = start_network(c, plugin, "vxlan")
    pod = make_pod(c, "x1")
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
