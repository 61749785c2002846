"""A read-only picture of a live cluster, enough to simulate one packet without sending it.

Per node, read lazily the first time the simulation reaches it (a trace usually touches one or two
nodes): IPv4 addresses, routes, links (VXLAN parameters), neighbours and FDB entries of tunnel devices,
the `iptables-save` text of nat + filter and the ipsets' members. Pods, hosts and the NetworkPolicy model come from the
store. Unit tests build `NodeView`s by hand and pass them in `ClusterView(nodes=...)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netsim import naming
from netsim.kernel.api import Fdb, Link, Neigh, Route
from netsim.kernel.routes import NextHop, lookup_route, next_hop, vxlan_peer


@dataclass
class NodeView:
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

    @property
    def local_ips(self) -> list[str]:
        return [c.split("/")[0] for _, c in self.addrs]

    def addr_of(self, ifname: str) -> str | None:
        return next((c.split("/")[0] for i, c in self.addrs if i == ifname), None)

    def route_for(self, ip: str) -> Route | None:
        """Longest-prefix match in the main table (what `ip route get` would pick, minus policy rules)."""
        return lookup_route(self.routes, ip)

    def next_hop(self, ip: str) -> NextHop:
        """The route, out device and next hop for `ip`: the forwarding decision both packet walkers share
        (`netsim.kernel.routes.next_hop`; the topology graph's `forward_hops` makes it with the same call)."""
        return next_hop(self.routes, ip)

    def neigh(self, ifname: str, ip: str) -> Neigh | None:
        return self.vxlan_peer(ifname, ip)[0]

    def fdb(self, ifname: str, mac: str) -> Fdb | None:
        return next((f for f in self.fdbs if f.ifname == ifname and f.mac.lower() == mac.lower()), None)

    def vxlan_peer(self, ifname: str, ip: str) -> tuple[Neigh | None, Fdb | None]:
        """The neighbour (VTEP MAC) and FDB entry (remote node IP) of next hop `ip` on VXLAN device `ifname`
        (`netsim.kernel.routes.vxlan_peer`, shared with the topology graph)."""
        return vxlan_peer(self.neighs, self.fdbs, ifname, ip)


@dataclass(frozen=True)
class PodView:
    key: str  # ns/name
    ip: str
    node: str
    netns: str
    labels: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    ports: tuple[tuple[int, str], ...] = ()  # declared (containerPort, protocol): the workload server serves them


@dataclass
class ClusterView:
    name: str
    plugin: str
    backend: str
    node_ips: dict[str, str]  # node name -> node IP
    pods: list[PodView] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)  # host name -> IP
    fabric: str = ""
    model: Any = None  # netsim.policy.model.PolicyModel
    nodes: dict[str, NodeView] = field(default_factory=dict)
    node_netns: dict[str, str] = field(default_factory=dict)  # node name -> netns
    host_netns: dict[str, str] = field(default_factory=dict)  # host name -> netns
    loader: Callable[[str], NodeView] | None = None
    proxy_loader: Callable[[str], list[str]] | None = None

    @property
    def enforces_policy(self) -> bool:
        return self.plugin in ("calico", "canal")

    def node(self, name: str) -> NodeView:
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
    def _pod_by_netns(self) -> dict[str, PodView]:
        out: dict[str, PodView] = {}
        for p in self.pods:
            out.setdefault(p.netns, p)
        return out

    @functools.cached_property
    def _pods_by_ip(self) -> dict[str, list[PodView]]:
        out: dict[str, list[PodView]] = {}
        for p in self.pods:
            if not p.host_network:
                out.setdefault(p.ip, []).append(p)
        return out

    @functools.cached_property
    def _pod_by_key(self) -> dict[str, PodView]:
        out: dict[str, PodView] = {}
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

    def pod_by_ip(self, ip: str, node: str | None = None) -> PodView | None:
        for p in self._pods_by_ip.get(ip, ()):
            if node is None or p.node == node:
                return p
        return None

    def pod(self, key: str) -> PodView | None:
        return self._pod_by_key.get(key)

    def host_by_ip(self, ip: str) -> str | None:
        return next((h for h, hip in self.hosts.items() if hip == ip), None)

    def announcing_node(self, ip: str) -> str | None:
        """The node answering ARP for a LoadBalancer / external IP on the underlay (MetalLB L2 style)."""
        for name in self.node_ips:
            view = self.node(name)
            if view.proxy_neighs is None:
                view.proxy_neighs = self.proxy_loader(name) if self.proxy_loader else []
            if ip in view.proxy_neighs:
                return name
        return None


def parse_ipset_save(text: str) -> dict[str, list[str]]:
    """`ipset save` output -> set name -> members (every set, also the empty ones)."""
    sets: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "create":
            sets.setdefault(words[1], [])
        elif len(words) >= 3 and words[0] == "add":
            sets.setdefault(words[1], []).append(words[2])
    return sets


def read_node(kernel: Any, name: str, ip: str, netns: str, *, filters: bool = True,
              all_neighs: bool = False) -> NodeView:
    """One node's kernel facts, the one reader both cluster pictures use (trace's lazily loaded view, the
    topology graph's `collect`): addresses, routes, links, the neighbours and FDB entries of its VXLAN devices
    (`all_neighs`: every neighbour entry), and with `filters` the `iptables-save` text and ipset members. A
    namespace with no links (gone, or never made) has no facts."""
    links = {link.name: link for link in kernel.links(netns)} if kernel.netns_exists(netns) else {}
    if not links:
        return NodeView(name, ip, netns)
    vxlans = [link.name for link in links.values() if link.kind == "vxlan"]
    neighs: list[Neigh] = list(kernel.neighs(netns)) if all_neighs else []
    fdbs: list[Fdb] = []
    for ifname in vxlans:
        if not all_neighs:
            neighs += kernel.neighs(netns, ifname)
        fdbs += kernel.fdbs(netns, ifname)
    save, sets = "", {}
    if filters:
        save = kernel.run(netns, ["iptables-save"], check=False).stdout or ""
        sets = parse_ipset_save(kernel.run(netns, ["ipset", "save"], check=False).stdout or "")
    return NodeView(name, ip, netns, kernel.addrs(netns), kernel.routes(netns), links, neighs, fdbs, save, sets)


def from_cluster(cluster: Any) -> ClusterView:
    """The view of a live `netsim.api.Cluster`; node details load on first use."""
    from netsim.controlplane import objects as o
    from netsim.policy.verify import model_from_store

    st = cluster.state
    kernel = cluster.kernel
    pods = []
    for p in cluster.pods():
        ip = (p.get("status") or {}).get("podIP")
        node = (p.get("spec") or {}).get("nodeName")
        if not ip or not node or o.is_terminal(p) or o.is_terminating(p):
            continue
        ns, name = o.namespace(p) or "default", o.name(p)
        pods.append(
            PodView(
                f"{ns}/{name}",
                ip,
                node,
                naming.pod_ns(cluster.name, ns, name),
                dict(o.labels(p)),
                bool((p.get("spec") or {}).get("hostNetwork")),
                tuple(
                    (int(cp["containerPort"]), cp.get("protocol", "TCP"))
                    for c in (p.get("spec") or {}).get("containers") or []
                    for cp in c.get("ports") or []
                ),
            )
        )
    nodes_by_name = {n["name"]: n for n in st.nodes}

    def load(name: str) -> NodeView:
        rec = nodes_by_name[name]
        return read_node(kernel, name, rec["ip"], rec["netns"])

    def proxies(name: str) -> list[str]:
        out = kernel.run(
            nodes_by_name[name]["netns"], ["ip", "-4", "neigh", "show", "proxy"], check=False
        ).stdout
        return [line.split()[0] for line in (out or "").splitlines() if line.split()]

    plugin = cluster.spec.network.plugin
    backend = cluster.spec.network.backend
    return ClusterView(
        cluster.name,
        plugin,
        backend,
        {n["name"]: n["ip"] for n in st.nodes},
        pods,
        {h["name"]: h["ip"] for h in st.hosts},
        st.fabric,
        model_from_store(cluster.store),
        node_netns={n["name"]: n["netns"] for n in st.nodes},
        host_netns={h["name"]: h["netns"] for h in st.hosts},
        loader=load,
        proxy_loader=proxies,
    )
