"""A shared policy test bed: one running cluster per CNI plugin with 3 namespaces of pods on 2 nodes,
Services selecting each pod, a small language for hand-written reachability expectations, and probes from
nodes / to node IPs beside the policy model (Cluster.verify covers pod -> pod only).

Layout (pinned with nodeName so same-node and cross-node pairs are fixed):

    ns x {team: red,  tier: front}   x/a node-1   x/b node-2   x/c node-1
    ns y {team: blue}                y/a node-2   y/b node-1   y/c node-2
    ns z {team: red,  env: prod}     z/a node-1   z/b node-2

Every pod has labels app=<a|b|c>, role=<web|db|cache>, svc=<name> (what its Service selects, never
touched by relabel cases); a and b pods also carry rank=1 / rank=2. Every pod serves 80/TCP, 81/TCP,
53/UDP (name dns) and 90/SCTP (name sctp). The port name `serve` is on 80/TCP for a pods and on 81/TCP
for b pods (the same name on different numbers); c pods call 81/TCP `alt` and have no `serve`.
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from netsim import lifecycle
from netsim.api import Cluster
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.policy.model import NodeEndpoint
from netsim.policy.verify import Cell, model_from_store
from netsim.probe.engine import Probe, run_probes

NODES = ("node-1", "node-2")
NAMESPACES: dict[str, dict[str, str]] = {
    "x": {"team": "red", "tier": "front"},
    "y": {"team": "blue"},
    "z": {"team": "red", "env": "prod"},
}
PLACEMENT: dict[str, str] = {
    "x/a": "node-1", "x/b": "node-2", "x/c": "node-1",
    "y/a": "node-2", "y/b": "node-1", "y/c": "node-2",
    "z/a": "node-1", "z/b": "node-2",
}
PODS = tuple(PLACEMENT)
ROLE = {"a": "web", "b": "db", "c": "cache"}
RANK = {"a": "1", "b": "2"}
DECLARED = ("80/TCP", "81/TCP", "53/UDP", "90/SCTP")


def pod_labels(key: str, **override: str | None) -> dict[str, str]:
    """A pod's base labels, with `override` applied (None removes a label)."""
    _, name = key.split("/")
    labels = {"app": name, "role": ROLE[name], "svc": name}
    if name in RANK:
        labels["rank"] = RANK[name]
    for k, v in override.items():
        if v is None:
            labels.pop(k, None)
        else:
            labels[k] = v
    return labels


def pod_manifest(key: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    ns, name = key.split("/")
    ports = [
        {"containerPort": 80, "protocol": "TCP", **({"name": "serve"} if name == "a" else {})},
        {"containerPort": 81, "protocol": "TCP",
         **({"name": "serve"} if name == "b" else {"name": "alt"} if name == "c" else {})},
        {"containerPort": 53, "protocol": "UDP", "name": "dns"},
        {"containerPort": 90, "protocol": "SCTP", "name": "sctp"},
    ]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or pod_labels(key)},
            "spec": {"nodeName": PLACEMENT[key],
                     "containers": [{"name": "srv", "image": "registry.k8s.io/e2e-test-images/agnhost",
                                     "ports": ports}]}}


def namespace_manifest(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": NAMESPACES[name] if labels is None else labels}}


def service_manifest(key: str) -> dict[str, Any]:
    ns, name = key.split("/")
    ports = [{"name": f"p{p}-{proto.lower()}", "port": int(p), "targetPort": int(p), "protocol": proto}
             for p, proto in (d.split("/") for d in DECLARED)]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{name}", "namespace": ns},
            "spec": {"selector": {"svc": name}, "ports": ports}}


def base_manifests() -> list[dict[str, Any]]:
    return ([namespace_manifest(n) for n in NAMESPACES] + [pod_manifest(k) for k in PODS]
            + [service_manifest(k) for k in PODS])


# ------------------------------------------------------------------------------------------------ cluster


@dataclass
class Bed:
    """A running cluster with the layout above. `ips` maps pod key -> pod IP, `node_ips` node -> IP."""

    cluster: Cluster
    plugin: str
    ips: dict[str, str] = field(default_factory=dict)
    node_ips: dict[str, str] = field(default_factory=dict)

    def refresh(self) -> None:
        self.ips = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p["status"]["podIP"]
                    for p in self.cluster.pods() if (p.get("status") or {}).get("podIP")}
        self.node_ips = {n["name"]: n["ip"] for n in self.cluster.state.nodes}

    def reset(self) -> None:
        """Back to the base state: no NetworkPolicies, base labels on namespaces and pods."""
        c = self.cluster
        for pol in c.get("NetworkPolicy"):
            c.store.delete("NetworkPolicy", pol["metadata"]["namespace"], pol["metadata"]["name"])
        changed = [m for m in base_manifests() if m["kind"] in ("Namespace", "Pod") and not self._same(m)]
        extra_ns = [n["metadata"]["name"] for n in c.get("Namespace")
                    if n["metadata"]["name"] not in (*NAMESPACES, "default", "kube-system", "kube-public")]
        for n in extra_ns:
            c.store.delete("Namespace", None, n)
        if changed:
            c.apply(changed, wait=False)
        self.settle()

    def settle(self, timeout: float = 60) -> None:
        """Wait until the data plane reflects every write made so far (the daemon's convergence marker
        carries the store revision its pass started from, so a converged marker covers our writes)."""
        self.cluster.wait_converged(timeout)

    def _same(self, manifest: dict[str, Any]) -> bool:
        md = manifest["metadata"]
        cur = self.cluster.store.get(manifest["kind"], md.get("namespace"), md["name"])
        return cur is not None and (cur["metadata"].get("labels") or {}) == md["labels"]


def cluster_spec(name: str, plugin: str, hosts: Sequence[dict[str, str]] = (), nodes: int = len(NODES)):
    """The bed's cluster: NODES (and more up to `nodes`), on `hosts` (spec.hosts, round-robin) when given."""
    names = [*NODES, *(f"node-{i + 1}" for i in range(len(NODES), nodes))]
    return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                          "spec": {"nodes": [{"name": n} for n in names],
                                   "network": {"plugin": plugin, "backend": "vxlan"},
                                   **({"hosts": list(hosts)} if hosts else {})}}, Source("<test>"))


@contextmanager
def policy_bed(kernel: Any, plugin: str, prefix: str = "h13", hosts: Sequence[dict[str, str]] = (),
               nodes: int = len(NODES)) -> Iterator[Bed]:
    """Build the bed (cluster named `<prefix><plugin initial><hex>`), remove it by name afterwards."""
    name = f"{prefix}{plugin[:2]}{secrets.token_hex(2)}"
    c = None
    try:
        c = Cluster.up(cluster_spec(name, plugin, hosts, nodes), timeout=120)
        c.apply(base_manifests(), timeout=90)
        bed = Bed(c, plugin)
        bed.refresh()
        assert set(PODS) <= set(bed.ips), f"pods missing: {set(PODS) - set(bed.ips)}"
        yield bed
    finally:
        if c is not None:
            c.close()
        lifecycle.down(kernel, name)


# ------------------------------------------------------------------------------------------------ expectations


@dataclass(frozen=True)
class Rule:
    """(source glob, destination glob, "port/PROTO" glob) -> allowed. Globs are fnmatch patterns over
    `ns/pod` (or `node/NAME`, `nodeip/NAME`) and `80/TCP`."""

    src: str
    dst: str
    port: str
    allowed: bool


def allow(src: str = "*", dst: str = "*", port: str = "*") -> Rule:
    return Rule(src, dst, port, True)


def deny(src: str = "*", dst: str = "*", port: str = "*") -> Rule:
    return Rule(src, dst, port, False)


@dataclass(frozen=True)
class Expect:
    """First matching rule wins; nothing matches -> `default`. A pod to itself directly (no Service) is
    always allowed (loopback never leaves the pod), so cases need not say it."""

    rules: tuple[Rule, ...] = ()
    default: bool = True

    def __call__(self, src: str, dst: str, port: int, proto: str, via: str = "pod") -> bool:
        if src == dst and via == "pod":
            return True
        pp = f"{port}/{proto}"
        for r in self.rules:
            if fnmatch.fnmatchcase(src, r.src) and fnmatch.fnmatchcase(dst, r.dst) \
                    and fnmatch.fnmatchcase(pp, r.port):
                return r.allowed
        return self.default


def expect(*rules: Rule, default: bool = True) -> Expect:
    return Expect(tuple(rules), default)


OPEN = expect()


def mismatches(cells: Sequence[Cell], exp: Expect, via: str = "pod") -> list[str]:
    """Every cell where the model or the kernel differ from the hand-written expectation."""
    out = []
    for c in cells:
        want = exp(c.source, c.destination, c.port, c.protocol, via)
        if c.expected != want or c.observed != want:
            why = c.verdict.explain().replace("\n", " |") if c.verdict else ""
            out.append(f"{c.source} -> {c.destination} {c.port}/{c.protocol} via {via}: hand={want} "
                       f"model={c.expected} kernel={c.observed} ({c.outcome}) {why}")
    return out


def recheck_late(c: Cluster, cells: list[Cell], via: str) -> list[Cell]:
    """Probe again, with a long timeout, the cells the model allows but whose probe timed out: on a busy
    machine an answer can take longer than TIMEOUT. A policy drop still times out; nothing can turn a
    drop into an answer, so this never hides a real disagreement in the other direction."""
    out = []
    for cell in cells:
        if cell.expected and cell.observed is False:
            again = c.verify(cell.source, cell.destination, [cell.port], [cell.protocol], via=via, timeout=2.0)
            cell = again.cells[0] if len(again.cells) == 1 else cell
        out.append(cell)
    return out



# ------------------------------------------------------------------------------------------------ node probes


def node_source_ip(bed: Bed, node: str, dst_ip: str) -> str:
    """The source address a node's packet to `dst_ip` carries: the route's preferred source (a remote
    pod is reached over the overlay, so it is the tunnel device's address, not the node IP)."""
    netns = bed.cluster.state.node(node)["netns"]
    out = bed.cluster.kernel.run(netns, ["ip", "-o", "route", "get", dst_ip]).stdout.split()
    return out[out.index("src") + 1]


def verify_nodes(bed: Bed, nodes: Sequence[str], pods: Sequence[str], ports: Sequence[tuple[int, str]],
                 timeout: float = 0.4) -> list[Cell]:
    """Cells for node -> pod probes (source label `node/NAME`), the model judging each with the packet's
    real source address."""
    model = model_from_store(bed.cluster.store)
    by_key = {p.key: p for p in model.pods}
    probes, meta = [], []
    for n in nodes:
        netns = bed.cluster.state.node(n)["netns"]
        for key in pods:
            src = NodeEndpoint(n, node_source_ip(bed, n, bed.ips[key]))
            for port, proto in ports:
                probes.append(Probe(netns, f"node/{n}", bed.ips[key], port, proto, timeout, to=key))
                meta.append((src, by_key[key], port, proto))
    cells = []
    for (src, dst, port, proto), r in zip(meta, run_probes(bed.cluster.kernel, probes)):
        v = model.verdict(src, dst, port, proto)
        observed = None if r.outcome == "error" else r.outcome in ("connected", "refused")
        cells.append(Cell(src.key, dst.key, port, proto, v.allowed, observed, r.outcome, v))
    return cells


def verify_to_nodes(bed: Bed, pods: Sequence[str], nodes: Sequence[str], ports: Sequence[tuple[int, str]],
                    timeout: float = 0.4) -> list[Cell]:
    """Cells for pod -> node IP probes (destination label `nodeip/NAME`): nothing listens there, so a
    RST/ICMP answer means the packet got through egress policy and a timeout means it was dropped."""
    model = model_from_store(bed.cluster.store)
    by_key = {p.key: p for p in model.pods}
    probes, meta = [], []
    for key in pods:
        netns = bed.cluster.sources(key)[0].netns or ""
        for n in nodes:
            for port, proto in ports:
                probes.append(Probe(netns, key, bed.node_ips[n], port, proto, timeout, to=f"nodeip/{n}"))
                meta.append((by_key[key], NodeEndpoint(n, bed.node_ips[n]), port, proto))
    cells = []
    for (src, dst, port, proto), r in zip(meta, run_probes(bed.cluster.kernel, probes)):
        v = model.verdict(src, dst, port, proto)
        observed = None if r.outcome == "error" else r.outcome in ("connected", "refused")
        cells.append(Cell(src.key, f"nodeip/{dst.name}", port, proto, v.allowed, observed, r.outcome, v))
    return cells


PolicyFn = Callable[[Bed], list[dict[str, Any]]]


def netpol(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}
