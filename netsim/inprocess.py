"""A cluster that lives in one process: its node network in a given kernel, its objects in a given store.

`netsim.Cluster.up(spec, kernel=..., store=...)` builds one; with `netsim.kernel.fake.FakeKernel` and
`netsim.store.MemoryStore` that is how the CLI and the Python API are tested without root and without
touching anything outside the process. The build is `lifecycle.up`'s without what belongs to a cluster
other processes can find (the state directory, its etcd, the API endpoint's certificates and kubeconfig
entry, the daemon): the fabric, nodes and hosts made by the same `netsim.fabric` calls, and the store
given what the daemon's start gives it (Node objects from the spec, kubeadm's namespaces and cluster
DNS: `Daemon.bootstrap`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from netsim import fabric, naming, state
from netsim.controlplane.admission import admit
from netsim.controlplane.nodes import node_object
from netsim.daemon import bootstrap_objects, normalise
from netsim.kernel.api import Kernel
from netsim.lifecycle import DownReport
from netsim.model.cluster import ClusterSpec
from netsim.store import Store

GONE = "gone"  # the phase of a cluster in process once `teardown` removed it


def build(k: Kernel, spec: ClusterSpec, store: Store,
          progress: Callable[[str], None] | None = None) -> state.ClusterState:
    """Build `spec`'s node network in `k` and bootstrap `store`; the ClusterState (kept in memory only).
    A failure removes what was built from `k` before it is raised, as `lifecycle.up` does."""
    say = progress or (lambda _: None)
    st = state.ClusterState(name=spec.name, phase="building", spec=spec.to_dict(), extra={"daemon": False})
    t0 = time.monotonic()
    try:
        st.fabric = fabric.build_fabric(k, spec)
        for i, node in enumerate(spec.nodes):
            st.nodes.append(fabric.add_node(k, spec, i, node))
            say(f"node {node.name} {st.nodes[-1]['ip']}")
        for i, host in enumerate(spec.external_hosts):
            st.hosts.append(fabric.add_host(k, spec, i, host))
            say(f"host {host.name} {host.ip}")
        fabric.underlay_neighbours(k, spec, st.nodes, st.hosts)
        now = time.time()
        with store.transaction() as tx:
            for i, _ in enumerate(spec.nodes):
                node = node_object(spec, i, now)
                if tx.get("Node", None, node["metadata"]["name"]) is None:
                    tx.create(node)
            namespaces = {x["metadata"]["name"] for x in tx.list("Namespace")}
            tx.apply(admit(normalise(bootstrap_objects(spec), "<bootstrap>"), spec, tx.list("Service"), namespaces))
    except BaseException:
        teardown(k, st)
        raise
    st.phase = "ready"
    st.extra["buildSeconds"] = round(time.monotonic() - t0, 3)
    return st


def teardown(k: Kernel, st: state.ClusterState) -> DownReport:
    """Remove every namespace of the cluster from `k`: pods first, nodes and hosts, the fabric last (each
    veth goes with the first of its ends), as `lifecycle.down` orders them."""
    names = [n for n in k.netns_list(naming.cluster_prefix(st.name)) if naming.owned_by(st.name, n)]
    names = sorted(set(names) | {r["netns"] for r in st.nodes + st.hosts} | ({st.fabric} if st.fabric else set()))
    rank = {naming.POD: 0, naming.NODE: 1, naming.HOST: 1, naming.FABRIC: 2}
    order = sorted(names, key=lambda n: (rank[parsed.role] if (parsed := naming.parse(n)) else 1, n))
    removed = 0
    for n in order:
        if k.netns_exists(n):
            k.netns_delete(n)
            removed += 1
    st.phase = GONE
    return DownReport(st.name, removed, 0, False)
