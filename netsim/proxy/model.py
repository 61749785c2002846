"""The proxy's own input types: what kube-proxy knows about one service port, one endpoint, the node it
runs on, and its flags.

They mirror kube-proxy's internal interfaces rather than the API objects, so the renderer can be tested
without manifests and an adapter (Service/EndpointSlice -> these) can come later:

- `ServicePort` follows `proxy.ServicePort` / `BaseServicePortInfo` (kubernetes pkg/proxy/serviceport.go):
  one entry per (service, port); `ExternallyAccessible`, `UsesClusterEndpoints`, `UsesLocalEndpoints`,
  `ExternalPolicyLocal`, `InternalPolicyLocal` have the same definitions.
- `EndpointInfo` (`Endpoint`) follows `proxy.Endpoint` / `BaseEndpointInfo` (pkg/proxy/endpoint.go): `String()` is
  `net.JoinHostPort(ip, port)`; ready/serving/terminating are the EndpointSlice conditions already
  defaulted (ready = ready is nil or true, serving = serving is nil or true, terminating = terminating is
  true; endpointslicecache.go). `port` is the already-resolved target port.
- `ProxyConfig` carries the kube-proxy flags that change the rules (--cluster-cidr / --detect-local-mode,
  --masquerade-all, --iptables-masquerade-bit, --iptables-localhost-nodeports, --nodeport-addresses).

Only IPv4 rendering is supported (netsim clusters are single-stack IPv4); endpoint strings and chain-name
hashing handle IPv6 correctly anyway.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from netsim.model.nodeview import NodeView

Protocol = Literal["TCP", "UDP", "SCTP"]
TrafficPolicy = Literal["Cluster", "Local"]
DetectLocalMode = Literal["ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", "None"]
NODEPORT_PRIMARY = "primary"

PROTOCOLS: tuple[str, ...] = ("TCP", "UDP", "SCTP")


def join_host_port(ip: str, port: int) -> str:
    """Go's net.JoinHostPort: IPv6 addresses are bracketed."""
    if ":" in ip:
        return f"[{ip}]:{port}"
    return f"{ip}:{port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, as kube-proxy sees it (pkg/proxy/serviceport.go BaseServicePortInfo).

    `cluster_ip` None means headless (or ClusterIP "None"): kube-proxy skips the service entirely.
    `load_balancer_ips` are the status.loadBalancer.ingress IPs already filtered (family, ipMode != Proxy).
    `session_affinity_timeout` None means sessionAffinity None; otherwise ClientIP with that many seconds.
    `health_check_node_port` only counts for eTP=Local (upstream keeps it only when NeedsHealthCheck).
    """

    namespace: str
    name: str
    port_name: str = ""
    protocol: Protocol = "TCP"
    cluster_ip: str | None = None
    port: int = 0
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity_timeout: int | None = None
    external_traffic_policy: TrafficPolicy = "Cluster"
    internal_traffic_policy: TrafficPolicy = "Cluster"
    health_check_node_port: int = 0

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unsupported protocol {self.protocol!r}")
        # Accept lists from callers but keep the object hashable and immutable.
        for name in ("external_ips", "load_balancer_ips", "load_balancer_source_ranges"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    # --- names ------------------------------------------------------------------------------------
    @property
    def service_name(self) -> str:
        """`<ns>/<name>`: the NamespacedName the partial-sync bookkeeping is keyed on (as upstream)."""
        return f"{self.namespace}/{self.name}"

    @property
    def port_name_string(self) -> str:
        """proxy.ServicePortName.String(): `ns/name`, plus `:portName` only when the port is named."""
        if self.port_name:
            return f"{self.namespace}/{self.name}:{self.port_name}"
        return f"{self.namespace}/{self.name}"

    @property
    def proto(self) -> str:
        """Lower-case protocol as used in rules (`-m tcp -p tcp`) and in chain-name hashing."""
        return self.protocol.lower()

    @property
    def key(self) -> tuple[str, str]:
        """(port name string, protocol): how endpoints are looked up for this port (upstream keys its
        EndpointsMap by ServicePortName, which includes the protocol)."""
        return (self.port_name_string, self.protocol)

    def sort_key(self) -> tuple[str, str, str, str]:
        """Deterministic order replacing kube-proxy's random map iteration."""
        return (self.namespace, self.name, self.port_name, self.protocol)

    # --- serviceport.go helpers -------------------------------------------------------------------
    @property
    def headless(self) -> bool:
        return not self.cluster_ip or self.cluster_ip == "None"

    def externally_accessible(self) -> bool:
        return self.node_port != 0 or bool(self.load_balancer_ips) or bool(self.external_ips)

    def external_policy_local(self) -> bool:
        # apiservice.ExternalPolicyLocal: only meaningful for externally accessible services.
        return self.external_traffic_policy == "Local" and self.externally_accessible()

    def internal_policy_local(self) -> bool:
        return self.internal_traffic_policy == "Local"

    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local() or self.externally_accessible()

    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local() or (self.external_policy_local() and self.externally_accessible())

    def source_ranges(self) -> tuple[str, ...]:
        """loadBalancerSourceRanges trimmed of whitespace and normalised to network form (as upstream
        parses them with net.ParseCIDR and prints IPNet.String())."""
        out = []
        for raw in self.load_balancer_source_ranges:
            text = raw.strip()
            if not text:
                continue
            out.append(str(ipaddress.ip_network(text, strict=False)))
        return tuple(out)


@dataclass(frozen=True)
class EndpointInfo:
    """One endpoint of a service port (pkg/proxy/endpoint.go BaseEndpointInfo): kube-proxy's per-port
    endpoint, a concept of its own beside an EndpointSlice's endpoint (netsim.model.endpointslice.Endpoint,
    the one class named Endpoint). `Endpoint` below is its name in kube-proxy's code (pkg/proxy's
    Endpoint interface)."""

    ip: str
    port: int
    node_name: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    zone_hints: tuple[str, ...] = ()  # EndpointSlice hints.forZones

    def __post_init__(self) -> None:
        # Rendering asks for `ip:port` several times per endpoint (chain name, DNAT, comments): keep it.
        # Not a field, so equality, hashing and repr are unchanged.
        object.__setattr__(self, "_text", join_host_port(self.ip, self.port))

    def __str__(self) -> str:  # endpoint.String()
        return self._text  # type: ignore[attr-defined]

    @property
    def key(self) -> str:
        return str(self)

    def is_local(self, node_name: str) -> bool:
        return bool(self.node_name) and self.node_name == node_name


Endpoint = EndpointInfo  # pkg/proxy's name (the Endpoint interface BaseEndpointInfo implements)


# The node kube-proxy runs on is the one node view (netsim.model.nodeview): its name for endpoint locality,
# its IPs (primary first), the pod CIDR (--detect-local-mode=NodeCIDR) and the zone (topology hints).
# `NodeInfo` is kube-proxy's name for it, kept for callers.
NodeInfo = NodeView


@dataclass(frozen=True)
class LocalDetector:
    """kube-proxy's LocalTrafficDetector for iptables (pkg/proxy/util/localdetector.go): the rule
    arguments matching traffic from a local pod (`if_local`) and traffic that is not (`if_not_local`).
    NewDetectLocalByCIDR: `-s CIDR` / `! -s CIDR`; NewDetectLocalByBridgeInterface: `-i BR` / `! -i BR`;
    NewDetectLocalByInterfaceNamePrefix: `-i PREFIX+` / `! -i PREFIX+`. No detector (NewNoOpLocalDetector)
    is None where one is expected."""

    if_local: str
    if_not_local: str

    @classmethod
    def by_cidr(cls, cidr: str) -> LocalDetector:
        return cls(f"-s {cidr}", f"! -s {cidr}")

    @classmethod
    def by_interface(cls, name: str) -> LocalDetector:
        return cls(f"-i {name}", f"! -i {name}")


@dataclass(frozen=True)
class ProxyConfig:
    """kube-proxy flags that shape the rules.

    - `detect_local_mode` picks the LocalTrafficDetector (cmd/kube-proxy/app/server_linux.go
      getLocalDetector): ClusterCIDR uses `cluster_cidr`, NodeCIDR the node's pod CIDR, BridgeInterface
      `bridge_interface`, InterfaceNamePrefix `interface_name_prefix`; ClusterCIDR without a CIDR, NodeCIDR
      on a node without a pod CIDR, and "None" mean no detector (no `! -s` masquerade rule, no pod
      short-circuit in KUBE-EXT chains).
    - `masquerade_bit` 14 gives mark 0x4000. kube-proxy formats it with Go's "%#08x", i.e. `0x00004000`;
      `iptables-save` prints it back as `0x4000`.
    - `localhost_nodeports` as --iptables-localhost-nodeports (default true), disabled automatically when
      `nodeport_addresses` is set and contains no IPv4 loopback address.
    - `nodeport_addresses` empty = all local addresses (`-m addrtype --dst-type LOCAL`); CIDRs of both
      families (only the IPv4 ones count; none, or a 0.0.0.0/0 among them, means all); or ("primary",),
      which kube-proxy turns into the node's primary IP /32 (cmd/kube-proxy/app/server.go newProxyServer).
    - `nfacct`: whether the nfacct counters (`localhost_nps_accepted_pkts`, `ct_state_invalid_dropped_pkts`)
      exist. kube-proxy only writes `-m nfacct` matches for counters it managed to create; netsim does not
      create nfacct objects, so the default is False and those matches are left out (as kube-proxy does on
      a host without nfacct support).
    - `conntrack_tcp_be_liberal`: the sysctl net.netfilter.nf_conntrack_tcp_be_liberal != 0 removes the
      KUBE-FORWARD INVALID drop.
    - `random_fully`: whether iptables supports MASQUERADE --random-fully (current iptables does).
    - `large_cluster_threshold`: above this many endpoints the per-endpoint comments are dropped.
    - `skip_unchanged_top_chains`: on partial syncs, leave out the top-level chains (KUBE-SERVICES,
      KUBE-NODEPORTS, the filter chains, ...) whose rules did not change. kube-proxy rewrites them on every
      sync (False, the default, keeps that); with thousands of services that rewrite dominates a partial
      sync (iptables-nft-restore parses every rule), so a one-endpoint change costs O(services). True makes
      it O(changed services). The kernel ends up with the same rules either way.
    - `restore_stage_chains`: a sync that (re)writes more per-service chains than this is applied as several
      restores (service chains in chunks of whole services, then the top-level chains and deletions)
      instead of one, because iptables-nft-restore 1.8.x keeps the chain names a payload mentions in a
      sorted linked list (nft-cache.c cache_chain_list_insert), which makes one restore quadratic in the
      number of chains: 1k services x 5 endpoints take ~1.3 s, 4k take ~60 s, 10k ~15 min. 0 disables it.
    """

    cluster_cidr: str | None = None
    detect_local_mode: DetectLocalMode = "ClusterCIDR"
    bridge_interface: str = ""
    interface_name_prefix: str = ""
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_nodeports: bool = True
    nodeport_addresses: tuple[str, ...] = ()
    nfacct: bool = False
    conntrack_tcp_be_liberal: bool = False
    random_fully: bool = True
    large_cluster_threshold: int = 1000
    skip_unchanged_top_chains: bool = False
    restore_stage_chains: int = 1200

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodeport_addresses", tuple(self.nodeport_addresses))
        if not 0 <= self.masquerade_bit <= 31:
            raise ValueError("masquerade_bit must be in 0..31")

    @property
    def masquerade_mark(self) -> str:
        """The mark string exactly as kube-proxy writes it (Go "%#08x"): bit 14 -> `0x00004000`."""
        return "0x" + format(1 << self.masquerade_bit, "08x")

    @property
    def mark_value(self) -> int:
        return 1 << self.masquerade_bit

    def local_detector(self, node: NodeInfo) -> LocalDetector | None:
        """The LocalTrafficDetector of this node, or None for the no-op detector."""
        mode = self.detect_local_mode
        if mode == "ClusterCIDR":
            return LocalDetector.by_cidr(self.cluster_cidr) if self.cluster_cidr else None
        if mode == "NodeCIDR":
            return LocalDetector.by_cidr(node.pod_cidr) if node.pod_cidr else None
        if mode == "BridgeInterface" and self.bridge_interface:
            return LocalDetector.by_interface(self.bridge_interface)
        if mode == "InterfaceNamePrefix" and self.interface_name_prefix:
            return LocalDetector.by_interface(self.interface_name_prefix + "+")
        return None

    # --- nodePortAddresses (pkg/proxy/util/nodeport_addresses.go NewNodePortAddresses, IPv4 family) -------
    def nodeport_primary(self) -> bool:
        return self.nodeport_addresses == (NODEPORT_PRIMARY,)

    def nodeport_cidrs(self, node: NodeInfo) -> tuple[ipaddress.IPv4Network, ...]:
        """The IPv4 CIDRs NodePorts are accepted on; ("primary",) becomes the node's primary IP /32 and an
        empty result means all (NewNodePortAddresses adds 0.0.0.0/0 when no CIDR of the family is left)."""
        if self.nodeport_primary():
            ip = node.primary_ip
            texts: tuple[str, ...] = (f"{ip}/32",) if ip and not ip.startswith("127.") else ()
        else:
            texts = self.nodeport_addresses
        nets = [ipaddress.ip_network(c, strict=False) for c in texts]
        return tuple(n for n in nets if isinstance(n, ipaddress.IPv4Network))

    def nodeport_match_all(self, node: NodeInfo | None = None) -> bool:
        """MatchAll: no IPv4 CIDR given, or a zero CIDR among them."""
        if self.nodeport_primary():
            return node is not None and not self.nodeport_cidrs(node)
        nets = self.nodeport_cidrs(node or NodeInfo(""))
        return not nets or any(n.prefixlen == 0 for n in nets)

    def effective_localhost_nodeports(self) -> bool:
        """NewProxier: localhost NodePorts are disabled when nodePortAddresses has no IPv4 loopback
        (ContainsIPv4Loopback: the CIDR's address is a loopback address or it contains 127.0.0.0)."""
        if not self.localhost_nodeports:
            return False
        if self.nodeport_primary():
            return False  # the primary IP /32 of a node is never a loopback address
        nets = self.nodeport_cidrs(NodeInfo(""))
        if not nets:
            return True
        start = ipaddress.IPv4Address("127.0.0.0")
        return any(n.network_address.is_loopback or start in n for n in nets)

    def nodeport_ips(self, node: NodeInfo) -> list[str]:
        """NodePortAddresses.GetNodeIPs: the node's addresses (and 127.0.0.1, which every netns has on lo)
        inside the IPv4 nodePortAddresses, in the node's address order (upstream's order is a map's)."""
        nets = self.nodeport_cidrs(node)
        out: list[str] = []
        for ip in (*node.ips, "127.0.0.1"):
            addr = ipaddress.ip_address(ip)
            if any(addr.version == n.version and addr in n for n in nets) and ip not in out:
                out.append(ip)
        return out


@dataclass
class ServiceEndpoints:
    """A service port with its endpoints; the renderer's unit of input."""

    service: ServicePort
    endpoints: list[Endpoint] = field(default_factory=list)
