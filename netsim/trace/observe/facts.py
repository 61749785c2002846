"""Reading the one cluster view (`netsim.trace.view`) from a live cluster: the kernel and the store.

`read_node` is the one reader of a node's kernel facts (addresses, routes, links, the neighbours and FDB
entries of its VXLAN devices, and for a trace the `iptables-save` text and ipset members, read by
`netsim.parsers`). Two ways to fill the view: `from_cluster` for a trace (nodes read lazily, the first time
the packet walker reaches them; the fabric known by the spec's addresses), `read_cluster` for the topology
picture (`netsim.topology.collect`: everything at once, with the fabric, hosts, pods' host veths and routes
and Services). The view itself, and everything that walks it, is pure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from netsim import naming
from netsim.controlplane import podstate as ps
from netsim.kernel.api import Fdb, Neigh
from netsim.parsers.ipset import parse_ipset_save
from netsim.trace.view import (
    ClusterView,
    EndpointData,
    FabricView,
    HostView,
    NodeKernelState,
    PodKernelState,
    ServiceData,
    ServicePortData,
    make_view,
)


def read_node(kernel: Any, name: str, ip: str, netns: str, *, filters: bool = True,
              all_neighs: bool = False) -> NodeKernelState:
    """One node's kernel facts, the one reader both ways of filling the view use (`from_cluster`,
    `read_cluster`): addresses, routes, links, the neighbours and FDB entries of its VXLAN devices
    (`all_neighs`: every neighbour entry), and with `filters` the `iptables-save` text and ipset members. A
    namespace with no links (gone, or never made) has no facts."""
    links = {link.name: link for link in kernel.links(netns)} if kernel.netns_exists(netns) else {}
    if not links:
        return NodeKernelState(name, ip, netns)
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
    return NodeKernelState(name, ip, netns, kernel.addrs(netns), kernel.routes(netns), links, neighs, fdbs, save, sets)


def from_cluster(cluster: Any) -> ClusterView:
    """The view of a live `netsim.api.Cluster` for a trace; node details load on first use."""
    from netsim.policy.verify import model_from_store

    st = cluster.state
    kernel = cluster.kernel
    pods = []
    for p in _typed_pods(cluster.store):
        ip, node = p.status.pod_ip, p.spec.node_name
        if not ip or not node or not ps.active(p):
            continue
        ns, name = p.meta.namespace or "default", p.meta.name
        pods.append(
            PodKernelState(
                f"{ns}/{name}",
                ip,
                node,
                naming.pod_ns(cluster.name, ns, name),
                dict(p.meta.labels),
                p.spec.host_network,
                tuple((cp.container_port, cp.protocol) for _, cp in p.spec.all_ports()),
            )
        )
    nodes_by_name = {n["name"]: n for n in st.nodes}

    def load(name: str) -> NodeKernelState:
        rec = nodes_by_name[name]
        return read_node(kernel, name, rec["ip"], rec["netns"])

    def proxies(name: str) -> list[str]:
        out = kernel.run(
            nodes_by_name[name]["netns"], ["ip", "-4", "neigh", "show", "proxy"], check=False
        ).stdout
        return [line.split()[0] for line in (out or "").splitlines() if line.split()]

    plugin = cluster.spec.network.plugin
    backend = cluster.spec.network.backend
    # the fabric's addresses are the spec's (the node network's gateway, each routed host's gateway: what
    # netsim/fabric.py gives it); its routes are not read - the walker then knows it as the underlay's router
    spec = cluster.spec
    gateways = [gw for gw in dict.fromkeys(h.get("gateway") for h in st.hosts) if gw and gw != spec.gateway_ip]
    fabric = FabricView(st.fabric, naming.UNDERLAY_BRIDGE,
                        addrs=[(naming.UNDERLAY_BRIDGE, f"{spec.gateway_ip}/{spec.node_net.prefixlen}"),
                               *(("", f"{gw}/32") for gw in gateways)])
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
        fabric_facts=fabric,
    )


def _host_veth_candidates(namespace: str, name: str, container_id: str) -> list[str]:
    """Host-side veth names the in-tree plugins derive from a pod (flannel/bridge: `veth`+hash of the
    attachment; calico/canal: `cali`+hash of ns.pod)."""
    out = []
    try:
        from cni_plugins.flannel import host_veth_name
        out.append(host_veth_name(container_id, "eth0"))
    except Exception:  # noqa: BLE001 - a plugin that cannot be imported simply offers no candidate
        pass
    try:
        from cni_plugins.routed_veth import calico_veth_name
        out.append(calico_veth_name(namespace, name, container_id))
    except Exception:  # noqa: BLE001
        pass
    return out


def _sandboxes(cluster: str, node: str) -> dict[str, dict[str, Any]]:
    out = {}
    for f in (Path(naming.node_state_dir(cluster, node)) / "sandboxes").glob("*.json"):
        try:
            sb = json.loads(f.read_text())
            out[f"{sb['namespace']}/{sb['name']}"] = sb
        except (OSError, ValueError, KeyError):
            continue
    return out


def read_cluster(cluster: Any, *, pod_routes: bool = True) -> ClusterView:
    """A live cluster (a netsim.api.Cluster) read into the cluster view at once, for the topology picture:
    the state file, the kernel (every node through `read_node`, without netfilter state, with every
    neighbour entry; the fabric's links, addresses and routes; the hosts' routes and fabric ports; the pods'
    host veths (from the sandbox records and the plugins' names) and routes) and the store (pods, Services
    with their EndpointSlices' endpoints)."""
    k = cluster.kernel
    st = cluster.state
    spec = cluster.spec
    fabric_ns = st.fabric or naming.fabric_ns(st.name)
    fabric = FabricView(netns=fabric_ns, bridge=naming.UNDERLAY_BRIDGE, links=k.links(fabric_ns),
                        addrs=k.addrs(fabric_ns), routes=k.routes(fabric_ns))
    nodes = []
    for rec in st.nodes:
        # the node reader trace's cluster view uses, without netfilter state and with every neighbour entry
        nv = read_node(k, rec["name"], rec["ip"], rec["netns"], filters=False, all_neighs=True)
        nv.pod_cidr = rec.get("podCIDR", "")
        nv.machine = rec.get("host", "")
        nodes.append(nv)
    node_links = {nv.name: set(nv.links) for nv in nodes}
    host_ports = {link.peer_netns_id: link.name for link in fabric.links if link.name.startswith("h")}
    hosts = []
    for i, rec in enumerate(st.hosts):
        ns = rec["netns"]
        routes = k.routes(ns) if k.netns_exists(ns) else []
        port = naming.fabric_port_for_host(i)
        hosts.append(HostView(rec["name"], rec["ip"], ns, rec.get("gateway", ""), routes,
                              port if port in host_ports.values() else None))
    sandboxes = {key: sb for rec in st.nodes for key, sb in _sandboxes(st.name, rec["name"]).items()}
    pods = []
    for p in _typed_pods(cluster.store):
        ip, node = p.status.pod_ip, p.spec.node_name
        if not ip or not node or ps.terminal(p):
            continue
        ns_name, name = p.meta.namespace or "default", p.meta.name
        netns = naming.pod_ns(st.name, ns_name, name)
        sb = sandboxes.get(f"{ns_name}/{name}", {})
        host_if = next((c for c in _host_veth_candidates(ns_name, name, sb.get("container_id", ""))
                        if c in node_links.get(node, set())), None) if sb else None
        routes = []
        if pod_routes and k.netns_exists(netns):
            routes = k.routes(netns)
        pods.append(PodKernelState(f"{ns_name}/{name}", ip, node, netns, dict(p.meta.labels),
                                   p.spec.host_network, host_veth=host_if, routes=tuple(routes),
                                   phase=p.status.phase or ""))
    # Services and their slices: the typed objects of the store's parse cache (kube-proxy's and DNS's too)
    slices: dict[tuple[str, str], list[Any]] = {}
    for es in cluster.store.typed_list("EndpointSlice"):
        svc = es.meta.labels.get("kubernetes.io/service-name")
        if svc:
            slices.setdefault((es.meta.namespace or "default", svc), []).append(es)
    services = []
    for s in cluster.store.typed_list("Service"):
        ns_name, name = s.meta.namespace or "default", s.meta.name
        eps = []
        for es in slices.get((ns_name, name), []):
            for e in es.endpoints:
                ref = e.target_ref or {}
                pod = f"{ref.get('namespace', ns_name)}/{ref['name']}" if ref.get("kind") == "Pod" else None
                for addr in e.addresses:
                    eps.append(EndpointData(addr, pod, e.node_name, e.is_ready))
        services.append(ServiceData(
            ns_name, name, s.type, s.cluster_ip,
            [ServicePortData(p.port, p.protocol, p.name or "", p.target_port, p.node_port) for p in s.ports],
            list(s.external_ips), list(s.status.ingress_ips), eps))
    return make_view(st.name, spec.network.plugin, spec.network.backend, fabric, nodes, hosts, pods, services)


def _typed_pods(store: Any) -> list[Any]:
    """The store's pods as typed objects (its parse cache's: once per resourceVersion), by key; one that
    does not parse is left out (it has no sandbox to trace)."""
    return sorted(store.typed_list("Pod"), key=lambda p: f"{p.meta.namespace or 'default'}/{p.meta.name}")
