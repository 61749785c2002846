"""The cluster's pod network: which CNI plugin, its node daemons, and the CNI config each kubelet passes.

flannel: flanneld per node (subnet lease = the node's podCIDR, VXLAN or host-gw) + the flannel CNI plugin.
calico:  calico-node per node (/26 block IPAM, vxlan.calico or direct routes, the pool's natOutgoing) + the
         calico CNI plugin.
canal:   flanneld for routing + calico's CNI plugin model with host-local IPAM on the node podCIDR.
Policy is enforced (felix) for calico and canal only, as with the real plugins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from cni_plugins import calico, canal, flannel
from cni_plugins.common import NodeContext
from cni_plugins.registry import get_plugin
from cni_plugins.routed_veth import WorkloadEndpoint as CniEndpoint
from cni_plugins.routed_veth import list_endpoints
from netsim import naming
from netsim.kernel.api import Kernel
from netsim.model.cluster import ClusterSpec
from netsim.policy.felix import WorkloadEndpoint

NETWORK_NAME = "k8s-pod-network"


@dataclass(frozen=True)
class NodeRec:
    """What the pod network needs to know about a node."""

    name: str
    ip: str
    pod_cidr: str


class PodNetwork:
    def __init__(self, kernel: Kernel, spec: ClusterSpec):
        self.kernel = kernel
        self.spec = spec
        self.plugin_name = spec.network.plugin
        self.plugin_type = f"netsim-{self.plugin_name}"
        self.plugin = get_plugin(self.plugin_type)
        self.state_dir = naming.state_dir(spec.name)
        self._flannel = flannel.FlannelNetConf(network=spec.network.pod_cidr, backend=spec.network.backend) \
            if self.plugin_name in ("flannel", "canal") else None
        self._calico = calico.CalicoNetConf(pool=spec.network.pod_cidr, backend=spec.network.backend,
                                            nat_outgoing=spec.network.nat_outgoing) \
            if self.plugin_name == "calico" else None
        self._calico_daemons: dict[str, calico.CalicoNodeDaemon] = {}
        self._endpoints: dict[str, dict[str, CniEndpoint]] = {}  # node -> endpoint file -> endpoint

    @property
    def enforces_policy(self) -> bool:
        return self.plugin_name in ("calico", "canal")

    def ctx(self, node: str) -> NodeContext:
        return NodeContext(self.spec.name, node, self.state_dir)

    def sync(self, nodes: list[NodeRec], only: Collection[str] | None = None) -> None:
        """(Re)program every listed node for the others: overlay peers or routes. Idempotent. `only`: program
        just these nodes (those whose agents run in this process; the others are their peers)."""
        mine = [n for n in nodes if only is None or n.name in only]
        if self._flannel is not None:
            leases = [flannel.lease_for(self.spec.name, n.name, n.ip, n.pod_cidr, self._flannel) for n in nodes]
            for n in mine:
                flannel.Flanneld(self.kernel, self.ctx(n.name), self._flannel).sync(leases)
        else:
            assert self._calico is not None
            for n in mine:
                if n.name not in self._calico_daemons:
                    d = calico.CalicoNodeDaemon(self.kernel, self.ctx(n.name), self._calico, n.ip)
                    d.start()
                    self._calico_daemons[n.name] = d
            peers = [calico.CalicoNode(n.name, n.ip) for n in nodes]
            for n in mine:
                self._calico_daemons[n.name].sync(peers)

    def routing_fingerprint(self) -> str:
        """What the cross-node routes depend on beyond the node list: calico's block affinities, VXLAN
        tunnel addresses and borrowed addresses (cni_plugins.calico.routing_inputs; IPAM claims another /26
        when a node's first is full). "" for flannel/canal, whose per-node subnets never change. Read every
        pass: it is one small document of the IPAM (its index, which a pod's address in its own node's
        block does not touch), so it costs the same at 10 pods as at 10,000."""
        if not self._calico_daemons:
            return ""
        ipam = next(iter(self._calico_daemons.values())).ipam
        inputs = [sorted(part.items()) for part in calico.routing_inputs(ipam)]
        return hashlib.sha256(json.dumps(inputs, default=str).encode()).hexdigest()

    def conf(self, node: str) -> dict[str, Any]:
        """The CNI network configuration a kubelet on `node` passes to the plugin."""
        conf: dict[str, Any] = {
            "cniVersion": "1.0.0", "name": NETWORK_NAME, "type": self.plugin_type,
            "netsim": {"cluster": self.spec.name, "node": node, "stateDir": self.state_dir},
        }
        if self.plugin_name == "calico":
            conf["ipam"] = {"type": "calico-ipam"}
            conf["backend"] = self.spec.network.backend
        elif self.plugin_name == "canal":
            conf["ipam"] = {"type": "host-local", "subnet": "usePodCidr"}
        return conf

    def endpoints(self, node: str) -> list[WorkloadEndpoint]:
        """The node's workload endpoints as felix sees them (calico and canal)."""
        if not self.enforces_policy:
            return []
        # The endpoint files already read are kept: a pass reads only the new ones (list_endpoints).
        cache = self._endpoints.setdefault(node, {})
        return [WorkloadEndpoint(e.namespace, e.pod, e.ip, e.host_ifname)
                for e in list_endpoints(self.ctx(node), cache)]


__all__ = ["PodNetwork", "NodeRec", "NETWORK_NAME", "canal"]
