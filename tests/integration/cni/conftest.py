"""A small netsim-like cluster on the real kernel for CNI tests: a fabric netns with the underlay bridge,
node netns with `eth0` on it, pods as bare netns, and the node daemons of each plugin.

Every namespace is `netsim-tcx<rand>.<role>...` (netsim.naming) and the finaliser removes them all, also when a test fails.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cni_plugins import calico, canal, flannel
from cni_plugins.common import NodeContext, node_netns
from cni_plugins.types import CniArgs
from netsim import naming
from netsim.kernel.api import Route

UNDERLAY_GW = "172.31.0.1"


@dataclass
class CniCluster:
    name: str
    kernel: Any
    state_dir: Path
    nodes: dict[str, str] = field(default_factory=dict)  # node -> underlay IP

    @property
    def fabric(self) -> str:
        return naming.fabric_ns(self.name)

    def ns(self, node: str) -> str:
        return node_netns(self.name, node)

    def ctx(self, node: str) -> NodeContext:
        return NodeContext(self.name, node, str(self.state_dir))

    def add_node(self, node: str, ip: str) -> str:
        """Node netns with eth0 (MTU 1500) on the underlay, default route, ip_forward on."""
        k, ns = self.kernel, self.ns(node)
        if not k.netns_exists(self.fabric):
            k.netns_create(self.fabric)
            k.bridge_add(self.fabric, "underlay", up=True)
            k.addr_add(self.fabric, "underlay", f"{UNDERLAY_GW}/24")
        k.netns_create(ns)
        port = f"{node}-eth0"
        k.veth_add(ns, "eth0", self.fabric, port, mtu=1500)
        k.link_set(self.fabric, port, master="underlay", up=True)
        k.addr_add(ns, "eth0", f"{ip}/24")
        k.route_replace(ns, Route(dst="default", via=UNDERLAY_GW, dev="eth0"))
        k.sysctl_set(ns, "net.ipv4.ip_forward", 1)
        self.nodes[node] = ip
        return ns

    def pod_ns(self, name: str) -> str:
        return naming.pod_ns(self.name, "default", name)

    def make_pod(self, name: str, cid: str | None = None) -> CniArgs:
        ns = self.pod_ns(name)
        self.kernel.netns_create(ns)
        return self.pod_args(name, cid)

    def pod_args(self, name: str, cid: str | None = None) -> CniArgs:
        return CniArgs(container_id=cid or f"ctr{name}{secrets.token_hex(4)}",
                       netns=f"/run/netns/{self.pod_ns(name)}", ifname="eth0",
                       # as kubelet/containerd pass them: IgnoreUnknown=1 lets the reference plugins accept
                       # the K8S_* keys they do not know
                       args={"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": name},
                       path=("/usr/lib/cni",))

    def start_network(self, plugin: str, backend: str) -> tuple[Any, Callable[[str], dict]]:
        """Run the node daemons on every node; returns (our CNI plugin, conf(node) factory)."""
        names = sorted(self.nodes)
        if plugin in ("flannel", "canal"):
            net = flannel.FlannelNetConf(backend=backend)
            leases = [flannel.lease_for(self.name, n, self.nodes[n], f"10.244.{i}.0/24", net)
                      for i, n in enumerate(names)]
            for n in names:
                flannel.Flanneld(self.kernel, self.ctx(n), net).sync(leases)
            mod: Any = flannel if plugin == "flannel" else canal
            extra: dict[str, Any] = {} if plugin == "flannel" else {
                "ipam": {"type": "host-local", "subnet": "usePodCidr"}}
        else:
            net = calico.CalicoNetConf(backend=backend)
            members = [calico.CalicoNode(n, self.nodes[n]) for n in names]
            daemons = [calico.CalicoNodeDaemon(self.kernel, self.ctx(n), net, self.nodes[n]) for n in names]
            for d in daemons:
                d.start()
            for d in daemons:
                d.sync(members)
            mod = calico
            extra = {"ipam": {"type": "calico-ipam"}, "backend": backend}

        def conf(node: str) -> dict:
            return {"cniVersion": "1.0.0", "name": "podnet", "type": f"netsim-{plugin}",
                    "netsim": {"cluster": self.name, "node": node, "stateDir": str(self.state_dir)}, **extra}

        return mod.PLUGIN, conf

    # -- probes ------------------------------------------------------------------------------------
    def ping(self, ns: str, ip: str, attempts: int = 3, size: int | None = None) -> bool:
        """One echo answered within 2 s, in up to `attempts` tries (the shared test machine is sometimes
        loaded enough to lose a first packet; use attempts=1 to assert that something is unreachable).
        `size`: payload bytes with DF set, for path-MTU checks."""
        argv = ["ping", "-c", "1", "-W", "2", "-n"] + (["-M", "do", "-s", str(size)] if size is not None else []) + [ip]
        return any(self.kernel.run(ns, argv, check=False).returncode == 0 for _ in range(attempts))

    def tcp(self, client_ns: str, server_ns: str, ip: str, port: int = 8080) -> str:
        """Listen on ip:port in `server_ns`, connect from `client_ns`; the client address the server saw."""
        k = self.kernel
        srv = k.call_in(server_ns, lambda: socket.create_server((ip, port)))
        srv.settimeout(5)

        def serve() -> None:
            try:
                conn, addr = srv.accept()
                conn.sendall(addr[0].encode())
                conn.close()
            except OSError:
                pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            cli = k.call_in(client_ns, lambda: socket.create_connection((ip, port), timeout=5))
            data = cli.recv(100)
            cli.close()
            return data.decode()
        finally:
            t.join(5)
            srv.close()


@pytest.fixture
def cni_cluster(tmp_path):
    """An empty CniCluster; tests add nodes. All its namespaces go in the finaliser."""
    from netsim.kernel.linux import LinuxKernel

    name = f"tcx{secrets.token_hex(3)}"
    k = LinuxKernel()
    c = CniCluster(name, k, tmp_path / "state")
    try:
        yield c
    finally:
        try:
            for ns in k.netns_list(naming.cluster_prefix(name)):
                k.netns_delete(ns)
        finally:
            k.close()
