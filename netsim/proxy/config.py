"""From the Cluster spec's `kubeProxy` section to the renderer's ProxyConfig (pure).

What kube-proxy's server does with its KubeProxyConfiguration before it builds the iptables proxier
(cmd/kube-proxy/app/server.go, server_linux.go): the detect-local mode and its parameters pick the
LocalTrafficDetector, clusterCIDR (netsim: the pod CIDR unless the spec says otherwise) feeds the
ClusterCIDR detector, nodePortAddresses and localhostNodePorts go to NewProxier as they are ("primary"
is resolved per node by ProxyConfig.nodeport_cidrs).
"""

from __future__ import annotations

from netsim.model.cluster import ClusterSpec
from netsim.proxy.model import ProxyConfig


def proxy_config(spec: ClusterSpec, **extra: object) -> ProxyConfig:
    """The ProxyConfig every node's kube-proxy runs with; `extra` sets netsim's own knobs
    (skip_unchanged_top_chains, restore_stage_chains, ...)."""
    kp = spec.kube_proxy
    return ProxyConfig(
        cluster_cidr=kp.effective_cluster_cidr(spec.network.pod_cidr) or None,
        detect_local_mode=kp.detect_local_mode,  # type: ignore[arg-type]
        bridge_interface=kp.bridge_interface,
        interface_name_prefix=kp.interface_name_prefix,
        masquerade_all=kp.masquerade_all,
        masquerade_bit=kp.masquerade_bit,
        localhost_nodeports=kp.localhost_nodeports,
        nodeport_addresses=kp.nodeport_addresses,
        **extra,  # type: ignore[arg-type]
    )
