"""The one cluster view: a read-only picture of a live cluster, what the packet walker
(`netsim.trace.simulate.walker`) and everything built on it - trace's simulation and its reply walk, the
topology graph and its paths (`netsim.topology`), `netsim draw` - read about nodes, pods, hosts, the fabric,
their links and routes.

Pure data; the kernel and the store are read into it by `netsim.trace.observe.facts`, two ways for one
class: `from_cluster` for a trace reads each node lazily the first time the simulation reaches it (a trace
usually touches one or two nodes): IPv4 addresses, routes, links (VXLAN parameters), neighbours and FDB
entries of tunnel devices, the `iptables-save` text of nat + filter and the ipsets' members; pods, hosts and
the NetworkPolicy model come from the store. `read_cluster` (`netsim.topology.collect`) reads every node
eagerly (without netfilter state, with every neighbour entry) and adds what a picture needs: the fabric's
links, addresses and routes, the hosts' routes and fabric ports, the pods' host veths and routes, Services
with their endpoints (`make_view`). Unit tests build `NodeKernelState`s and `PodKernelState`s by hand and
pass them in `ClusterView(nodes=..., pods=...)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netsim.kernel.api import Fdb, Link, Neigh, Route
from netsim.kernel.routes import covers, lookup_route


@dataclass
class NodeKernelState:
    """A node's observed kernel state (addresses, routes, links, neighbours, FDB, iptables-save, ipsets), what
    trace and the topology picture walk. Not the node as the control plane sees it: that is the one node view,
    netsim.model.nodeview.NodeView (trace's class carried the same name until they were told apart)."""

    name: str
    ip: str
    netns: str
    addrs: list[tuple[str, str]] = field(default_factory=list)  # (ifname, cidr)
    routes: list[Route] = field(default_factory=list)
    links: dict[str, Link] = field(default_factory=dict)
    neighs: list[Neigh] = field(default_factory=list)
    fdbs: list[Fdb] = field(default_factory=list)
    iptables: str = ""  # iptables-save of nat and filter
    ipsets: dict[str, list[str]] = field(default_factory=dict)  # ipset name -> members (`ipset save`)
    proxy_neighs: list[str] | None = None  # IPs answered on eth0 (LB / external IPs); read when needed
    pod_cidr: str = ""  # spec.podCIDR (the topology picture shows it; calico's blocks are its blackhole routes)
    machine: str = ""  # the spec.hosts entry the node runs on ("" on one machine); the picture groups by it

    @property
    def local_ips(self) -> list[str]:
        return [c.split("/")[0] for _, c in self.addrs]

    def addr_of(self, ifname: str) -> str | None:
        return next((c.split("/")[0] for i, c in self.addrs if i == ifname), None)

    def route_for(self, ip: str) -> Route | None:
        """Longest-prefix match in the main table (what `ip route get` would pick, minus policy rules), for
        describing an observed hop; where a packet goes is the walker's to say (`walker.step`)."""
        return lookup_route(self.routes, ip)



@dataclass(frozen=True)
class PodKernelState:
    """A pod's place in the kernel as the walker needs it: its netns and interface, the host side of its veth,
    its own routes when read, with the identity, labels, declared ports and phase the walk's verdicts name.
    Not the pod as the data plane's agents see it: that is the one pod view, netsim.model.podview.PodView
    (trace's class carried the same name until they were told apart, as NodeKernelState and NodeView)."""

    key: str  # ns/name
    ip: str
    node: str
    netns: str
    labels: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    ports: tuple[tuple[int, str], ...] = ()  # declared (containerPort, protocol): the workload server serves them
    host_veth: str | None = None  # host side of its veth in the node netns; None: from the node's /32 route
    ifname: str = "eth0"
    routes: tuple[Route, ...] | None = None  # its own table; None: not read (every CNI here routes to the node)
    phase: str = "Running"

    @property
    def namespace(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]


@dataclass
class HostView:
    """An external host: its address, netns, gateway, routes (None: not read; it sends to the fabric) and
    the fabric port (h0, h1, ...) it hangs off when it has a subnet of its own."""

    name: str
    ip: str
    netns: str = ""
    gateway: str = ""
    routes: list[Route] | None = None
    port: str | None = None


@dataclass
class FabricView:
    """The fabric netns (the underlay bridge and the router of the external subnets, `netsim/fabric.py`):
    its links, addresses and routes. With its routes unread (a trace), the walker takes it for the underlay's
    router that knows node and host addresses only, which is what `fabric.py` programs."""

    netns: str = ""
    bridge: str = "underlay"
    links: list[Link] = field(default_factory=list)
    addrs: list[tuple[str, str]] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)

    @property
    def known(self) -> bool:
        """Were its routes read (the topology picture reads them; a trace knows only its addresses)?"""
        return bool(self.routes)


@dataclass
class ServicePortData:
    port: int
    protocol: str = "TCP"
    name: str = ""
    target_port: int | str | None = None
    node_port: int | None = None


@dataclass
class EndpointData:
    ip: str
    pod: str | None = None  # "ns/name"
    node: str | None = None
    ready: bool = True


@dataclass
class ServiceData:
    """A Service as the topology picture shows it (its frontends and endpoints); the simulation reads
    Services from each node's kube-proxy rules instead."""

    namespace: str
    name: str
    type: str = "ClusterIP"
    cluster_ip: str | None = None
    ports: list[ServicePortData] = field(default_factory=list)
    external_ips: list[str] = field(default_factory=list)
    lb_ips: list[str] = field(default_factory=list)
    endpoints: list[EndpointData] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class ClusterView:
    name: str
    plugin: str
    backend: str
    node_ips: dict[str, str]  # node name -> node IP
    pods: list[PodKernelState] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)  # host name -> IP
    fabric: str = ""
    model: Any = None  # netsim.policy.model.PolicyModel
    nodes: dict[str, NodeKernelState] = field(default_factory=dict)
    node_netns: dict[str, str] = field(default_factory=dict)  # node name -> netns
    host_netns: dict[str, str] = field(default_factory=dict)  # host name -> netns
    loader: Callable[[str], NodeKernelState] | None = None
    proxy_loader: Callable[[str], list[str]] | None = None
    fabric_facts: FabricView = field(default_factory=FabricView)
    host_views: dict[str, HostView] = field(default_factory=dict)  # host name -> its details (when read)
    services: list[ServiceData] = field(default_factory=list)  # read for the topology picture only

    @property
    def enforces_policy(self) -> bool:
        return self.plugin in ("calico", "canal")

    def node(self, name: str) -> NodeKernelState:
        if name not in self.nodes:
            if self.loader is None:
                raise KeyError(f"no view of node {name}")
            self.nodes[name] = self.loader(name)
        return self.nodes[name]

    def node_ns(self, name: str) -> str:
        return self.node_netns.get(name) or (self.nodes[name].netns if name in self.nodes else "")

    def host_ns(self, name: str) -> str:
        return self.host_netns.get(name, "")

    # Lookups by namespace, IP and key, indexed once per view: a trace asks them for every event and hop,
    # and a linear scan over 10,000 pods each time would make a trace's cost follow the cluster's size.
    @functools.cached_property
    def _pod_by_netns(self) -> dict[str, PodKernelState]:
        out: dict[str, PodKernelState] = {}
        for p in self.pods:
            out.setdefault(p.netns, p)
        return out

    @functools.cached_property
    def _pods_by_ip(self) -> dict[str, list[PodKernelState]]:
        out: dict[str, list[PodKernelState]] = {}
        for p in self.pods:
            if not p.host_network:
                out.setdefault(p.ip, []).append(p)
        return out

    @functools.cached_property
    def _pod_by_key(self) -> dict[str, PodKernelState]:
        out: dict[str, PodKernelState] = {}
        for p in self.pods:
            out.setdefault(p.key, p)
        return out

    def node_of_ns(self, netns: str) -> str | None:
        index = self.__dict__.get("_node_by_netns")
        if index is None:
            index = {self.node_ns(n): n for n in self.node_ips}
            if "" not in index:  # every node's namespace known: keep it (a lazily loaded node may add one)
                self.__dict__["_node_by_netns"] = index
        return index.get(netns)

    def kind_of(self, netns: str) -> str:
        """pod | node | host | fabric | other"""
        if netns == self.fabric:
            return "fabric"
        if self.node_of_ns(netns):
            return "node"
        if netns in self.host_netns.values():
            return "host"
        if netns in self._pod_by_netns:
            return "pod"
        return "other"

    def label_of(self, netns: str) -> str:
        """How hops name a namespace: the node name, `pod ns/name`, `host/NAME`, `fabric`."""
        node = self.node_of_ns(netns)
        if node:
            return node
        if netns == self.fabric:
            return "fabric"
        host = next((h for h, n in self.host_netns.items() if n == netns), None)
        if host:
            return f"host/{host}"
        pod = self._pod_by_netns.get(netns)
        return f"pod {pod.key}" if pod else netns

    def node_by_ip(self, ip: str) -> str | None:
        return next((n for n, nip in self.node_ips.items() if nip == ip), None)

    def pod_by_ip(self, ip: str, node: str | None = None) -> PodKernelState | None:
        for p in self._pods_by_ip.get(ip, ()):
            if node is None or p.node == node:
                return p
        return None

    def pod(self, key: str) -> PodKernelState | None:
        return self._pod_by_key.get(key)

    def host_by_ip(self, ip: str) -> str | None:
        return next((h for h, hip in self.hosts.items() if hip == ip), None)

    def announcing_node(self, ip: str) -> str | None:
        """The node answering ARP for a LoadBalancer / external IP on the underlay (MetalLB L2 style): a proxy
        neighbour entry on its uplink, or the address routed to its `lo`."""
        for name in self.node_ips:
            view = self.node(name)
            if view.proxy_neighs is None:
                view.proxy_neighs = self.proxy_loader(name) if self.proxy_loader else []
            if ip in view.proxy_neighs or any(r.dst == f"{ip}/32" and r.dev == "lo" for r in view.routes):
                return name
        return None

    def host_veth_of(self, pod: PodKernelState) -> str | None:
        """The host side of a pod's veth in its node's netns: as recorded (the plugin's name for the sandbox),
        else the device of the node's /32 route to the pod (calico programs one per workload); None when the
        node has no such link."""
        if pod.node not in self.node_ips and pod.node not in self.nodes:
            return None
        nv = self.node(pod.node)
        name = pod.host_veth
        if name is None and pod.ip:
            name = next((r.dev for r in nv.routes if r.dst == f"{pod.ip}/32" and r.dev), None)
        return name if name is not None and name in nv.links else None

    def pod_behind(self, node: str, ifname: str) -> PodKernelState | None:
        """The pod whose host veth on `node` is `ifname` (a routed veth: calico's cali*)."""
        return next((p for p in self.pods if p.node == node and not p.host_network
                     and self.host_veth_of(p) == ifname), None)

    def on_underlay(self, ip: str) -> bool:
        """Is `ip` on the underlay segment (a subnet of the fabric's bridge; with no fabric address known,
        anywhere)? Only there can a node's proxy ARP answer for an address."""
        nets = [c for i, c in self.fabric_facts.addrs if i in ("", self.fabric_facts.bridge) and not c.endswith("/32")]
        return not nets or any(covers(c, ip) for c in nets)

    def underlay_owner(self, ip: str, *, announced: bool = True) -> tuple[str, str] | None:
        """Who answers for `ip` on the underlay segment, as a place (kind, name): the fabric for its own
        addresses (the nodes' gateway), a node for its address or (`announced`) a LoadBalancer / external IP
        it announces, an external host on the node network. With the fabric's routes unread, any other address is taken
        for the fabric's to route on (what `netsim/fabric.py` makes of the underlay); read, nobody's."""
        fab = self.fabric_facts
        if any(c.split("/")[0] == ip for _, c in fab.addrs if not c.startswith("127.")):
            return ("fabric", "")
        node = self.node_by_ip(ip)
        if node is not None:
            return ("node", node)
        host = self.host_by_ip(ip)
        if host is not None:
            return ("host", host)
        node = self.announcing_node(ip) if announced else None
        if node is not None:
            return ("node", node)
        return None if fab.known else ("fabric", "")


def make_view(name: str, plugin: str, backend: str, fabric: FabricView, nodes: list[NodeKernelState],
              hosts: list[HostView], pods: list[PodKernelState], services: list[ServiceData] = (),  # type: ignore[assignment]
              model: Any = None) -> ClusterView:
    """A fully read view (every node's facts at hand, no loader): what `netsim.topology.collect` reads from
    a live cluster and what unit tests write by hand."""
    return ClusterView(name, plugin, backend, {n.name: n.ip for n in nodes}, list(pods),
                       {h.name: h.ip for h in hosts}, fabric.netns, model, nodes={n.name: n for n in nodes},
                       node_netns={n.name: n.netns for n in nodes}, host_netns={h.name: h.netns for h in hosts},
                       fabric_facts=fabric, host_views={h.name: h for h in hosts}, services=list(services))
