"""Fixtures for CNI unit tests: a FakeKernel with node namespaces on a fake underlay, and configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cni_plugins.common import NodeContext, node_netns
from cni_plugins.types import CniArgs
from netsim.kernel.fake import FakeKernel

CLUSTER = "c"
NODES = {"a": "172.18.0.2", "b": "172.18.0.3", "c": "172.18.0.4"}
FABRIC = "netsim-c.fabric"


@pytest.fixture
def kernel() -> FakeKernel:
    k = FakeKernel()
    k.netns_create(FABRIC)
    for i, (node, ip) in enumerate(NODES.items()):
        ns = node_netns(CLUSTER, node)
        k.netns_create(ns)
        k.veth_add(ns, "eth0", FABRIC, f"n{i}", mtu=1500)
        k.addr_add(ns, "eth0", f"{ip}/16")
        k.sysctl_set(ns, "net.ipv4.ip_forward", 1)
    return k


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def ctx(state_dir: Path):
    """ctx(node) -> NodeContext for node of cluster "c" under the test's state dir."""
    return lambda node="a": NodeContext(CLUSTER, node, str(state_dir))


@pytest.fixture
def netsim_key(state_dir: Path):
    """netsim_key(node) -> the `netsim` config key for that node."""
    return lambda node="a": {"cluster": CLUSTER, "node": node, "stateDir": str(state_dir)}


@pytest.fixture
def make_pod(kernel: FakeKernel):
    """make_pod(name, cid=None, ns="default", ifname="eth0") -> CniArgs with the pod netns created."""

    def make(name: str, cid: str | None = None, ns: str = "default", ifname: str = "eth0",
             create: bool = True) -> CniArgs:
        netns = f"netsim-c-pod-{ns}-{name}"
        if create and not kernel.netns_exists(netns):
            kernel.netns_create(netns)
        return CniArgs(container_id=cid or f"cid{name}", netns=f"/run/netns/{netns}", ifname=ifname,
                       args={"K8S_POD_NAMESPACE": ns, "K8S_POD_NAME": name}, path=("/opt/cni/bin",))

    return make
