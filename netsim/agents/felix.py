"""felix for the cluster, driven by the change log: the calculation graph in front of every node's agent.

calico's felix takes datastore updates one by one (`OnUpdate`, felix/calc/calc_graph.go), keeps the active
policies and a label index of which endpoints each selector matches (felix/labelindex: a changed endpoint is
matched against the selectors, not every endpoint against every selector), and hands the dataplane driver a
batch when it is done (`CompleteDeferredWork`, felix/dataplane/linux/int_dataplane.go). Here the same
split:

- `FelixCalc` reads the changes since its last pass (netsim.agents.changes), decodes only the objects that
  changed (pods as policy sees them, namespaces, NetworkPolicies overlaid with the what-ifs of `verify
  --diff`), and keeps `SelectorIndex` current: a changed pod is matched against each selector once; a new
  policy's selectors against every pod once; a namespace's label change re-matches that namespace's pods.
  A pod update policy cannot see (status, readiness: most writes) changes nothing and costs a comparison.
- `Felix` runs the node agents (netsim/node/felix_agent.py) on the nodes whose inputs changed, with the
  selector sets' members from the index; a node renders its chains for its own endpoints as before.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from netsim import naming
from netsim.agents.changes import Batch, ChangeTracker
from netsim.controlplane import podstate as ps
from netsim.controlplane import whatif
from netsim.fanout import fan_out
from netsim.kernel.api import Kernel
from netsim.model.errors import NetsimError
from netsim.model.networkpolicy import NetworkPolicy, Peer
from netsim.model.pod import Pod
from netsim.node.felix_agent import FelixAgent
from netsim.node.watch_delay import WatchDelays
from netsim.policy.felix import WorkloadEndpoint, peer_selector, selector_set_name
from netsim.policy.model import NamespaceInfo, PodInfo, PolicyModel
from netsim.policy.stored import decode_policy

KINDS = frozenset({"Namespace", "Pod", "NetworkPolicy", whatif.KIND})
NsName = tuple[str, str]
InvalidFn = Callable[[dict, Exception], None]


def pod_info(pod: Pod) -> PodInfo | None:
    """A typed pod (the store's parse cache's) as policy sees it, None when policy does not see it: no IP
    yet, terminal, or on the host's network (nothing polices those: NetworkPolicy spec). As
    netsim.policy.verify.inputs_from_store takes them."""
    if not pod.status.pod_ip or ps.terminal(pod) or pod.spec.host_network:
        return None
    return PodInfo.of(pod)  # the one pod view (netsim.model.podview)


def selector_peers(policy: NetworkPolicy) -> Iterator[Peer]:
    """The peers of a policy that become selector ipsets (not ipBlocks)."""
    for rule in (*policy.ingress, *policy.egress):
        for peer in rule.peers:
            if peer.ip_block is None:
                yield peer


class SelectorIndex:
    """Which pods each selector set holds, kept per change (felix's label index). `evaluations` counts
    pod-against-selector matches, the work the index saves."""

    def __init__(self) -> None:
        self.selectors: dict[str, tuple[NetworkPolicy, Peer]] = {}
        self.members: dict[str, set[str]] = {}  # set name -> pod keys
        self.evaluations = 0

    def _match(self, model: PolicyModel, policy: NetworkPolicy, peer: Peer, pod: PodInfo) -> bool:
        self.evaluations += 1
        return bool(pod.ip) and ":" not in pod.ip and model.peer_matches(policy, peer, pod)

    def ensure(self, model: PolicyModel, policy: NetworkPolicy, peer: Peer, pods: Mapping[str, PodInfo]) -> None:
        name = selector_set_name(peer_selector(policy, peer))
        if name not in self.selectors:
            self.selectors[name] = (policy, peer)
            self.members[name] = {k for k, p in pods.items() if self._match(model, policy, peer, p)}

    def prune(self, policies: Iterable[NetworkPolicy]) -> None:
        keep = {selector_set_name(peer_selector(p, peer)) for p in policies for peer in selector_peers(p)}
        for name in [n for n in self.selectors if n not in keep]:
            del self.selectors[name], self.members[name]

    def update(self, model: PolicyModel, key: str, pod: PodInfo | None) -> set[str]:
        """Match one pod against every selector; returns the sets whose membership changed."""
        changed = set()
        for name, (policy, peer) in self.selectors.items():
            members = self.members[name]
            was = key in members
            if pod is not None and self._match(model, policy, peer, pod):
                members.add(key)
            else:
                members.discard(key)
            if was != (key in members):
                changed.add(name)
        return changed

    def ips(self, name: str, pods: Mapping[str, PodInfo]) -> list[str]:
        return [pods[k].ip for k in self.members.get(name, ()) if k in pods]


@dataclass
class CalcReport:
    decoded: int = 0  # objects decoded (pods as policy sees them, policies parsed)
    evaluations: int = 0  # pod-against-selector matches
    changed: bool = False


class FelixCalc:
    """felix's inputs for every node, kept from the change log (see the module docstring)."""

    def __init__(self, store: Any, on_invalid: InvalidFn | None = None):
        self.tracker = ChangeTracker(store, KINDS)
        self.on_invalid = on_invalid
        self.namespaces: dict[str, NamespaceInfo] = {}
        self.pods: dict[str, PodInfo] = {}
        self._live: dict[NsName, dict[str, Any]] = {}  # NetworkPolicies as stored
        self._whatifs: dict[NsName, dict[str, Any]] = {}
        self._parsed: dict[NsName, tuple[dict[str, Any], NetworkPolicy | None]] = {}  # overlaid raw -> parsed
        self.policies: list[NetworkPolicy] = []
        self.model = PolicyModel([], [], [])  # namespace labels for selector matching
        self.index = SelectorIndex()
        # Which nodes each policy is active on, and who uses what (felix's ActiveRulesCalculator and
        # PolicyResolver, calico felix/calc/active_rules_calculator.go and policy_resolver.go: a host gets
        # the policies that select one of its endpoints, and only the changes that touch those):
        self.selected: dict[str, set[str]] = {}  # policy key -> pod keys its podSelector selects
        self._set_users: dict[str, set[str]] = {}  # selector set -> keys of the policies whose rules use it
        self._named: set[str] = set()  # policies with a named port (their sets hold pods' ports)
        self.dirty: set[str] = set()  # nodes whose render inputs changed since `take_dirty`
        self.all_dirty = False  # every node's (a resync)
        self.version = 0  # moves whenever an input of any node's render changed
        self.decoded = 0
        self._inputs: tuple[list[NamespaceInfo], list[PodInfo], list[NetworkPolicy]] | None = None
        self._lock = threading.Lock()

    def update(self, batch: Batch | None = None) -> CalcReport:
        """OnUpdate for every change since the last pass, then the deferred work: policies overlaid and
        parsed again if any changed, the label index brought up to date."""
        batch = self.tracker.poll() if batch is None else batch
        decoded, evaluations = self.decoded, self.index.evaluations
        pods: dict[str, PodInfo | None] = {}
        namespaces: set[str] = set()
        policies = False
        present = {(k, ns or "", name) for k, ns, name in batch.objects} if batch.resync else set()
        if batch.resync:  # everything not listed is gone
            for key in list(self.pods):
                ns, _, name = key.partition("/")
                if ("Pod", ns, name) not in present:
                    pods[key] = None
            namespaces |= {n for n in self.namespaces if ("Namespace", "", n) not in present}
            for n in namespaces:
                del self.namespaces[n]
            policies = bool(self._live or self._whatifs)
            self._live, self._whatifs = {}, {}
        for (kind, ns, name), obj in batch.objects.items():
            if kind == "Pod":
                info = self._decode_pod(obj) if obj is not None else None
                key = f"{ns or 'default'}/{name}"
                if self.pods.get(key) != info:
                    pods[key] = info
            elif kind == "Namespace":
                info_ns = None if obj is None else self._namespace(name, obj)
                if self.namespaces.get(name) != info_ns:
                    namespaces.add(name)
                    if info_ns is None:
                        self.namespaces.pop(name, None)
                    else:
                        self.namespaces[name] = info_ns
            elif kind in ("NetworkPolicy", whatif.KIND):
                table = self._live if kind == "NetworkPolicy" else self._whatifs
                if obj is None:
                    policies |= table.pop((ns or "default", name), None) is not None
                elif table.get((ns or "default", name)) != obj:
                    table[(ns or "default", name)] = obj
                    policies = True
        with self._lock:
            if batch.resync:
                self.all_dirty = True
            if namespaces:
                self.model = PolicyModel(self.namespaces.values(), [], [])
            sets: set[str] = set()  # selector sets whose members changed
            for key, info in pods.items():
                old = self.pods.get(key)
                if info is None:
                    self.pods.pop(key, None)
                else:
                    self.pods[key] = info
                sets |= self.index.update(self.model, key, info)
                self._pod_changed(key, old, info)
            if namespaces:  # a namespace's labels: its pods against every selector again
                for key, info in self.pods.items():
                    if info.namespace in namespaces and key not in pods:
                        sets |= self.index.update(self.model, key, info)
                for pkey in self._named:  # a named port's set may hold that namespace's pods now
                    self.dirty |= self.active_nodes(pkey)
            for name in sets:  # each set is programmed on the nodes where a policy using it is active
                for pkey in self._set_users.get(name, ()):
                    self.dirty |= self.active_nodes(pkey)
            if policies:
                self._overlay()
            changed = bool(pods or namespaces or policies)
            if changed:
                self.version += 1
                self._inputs = None
        return CalcReport(self.decoded - decoded, self.index.evaluations - evaluations, changed)

    def active_nodes(self, policy_key: str) -> set[str]:
        """The nodes a policy is active on: those of the pods it selects."""
        pods = self.pods
        return {pods[k].node for k in self.selected.get(policy_key, ()) if k in pods}

    def _pod_changed(self, key: str, old: PodInfo | None, new: PodInfo | None) -> None:
        """A pod as policy sees it changed (added, removed, relabelled, new address or ports): its node is
        to be programmed again when the pod's endpoint or the policies selecting it changed; the nodes of
        the policies with named ports too (their sets hold the ports of the pods they match)."""
        moved = False
        for policy in self.policies:
            members = self.selected.setdefault(policy.key, set())
            was = key in members
            if new is not None and policy.selects(new.namespace, new.labels):
                members.add(key)
            else:
                members.discard(key)
            moved |= was != (key in members)
        if moved or old is None or new is None or old.ip != new.ip or old.ports != new.ports:
            self.dirty |= {p.node for p in (old, new) if p is not None}
        for pkey in self._named:
            self.dirty |= self.active_nodes(pkey)
            self.dirty |= {p.node for p in (old, new) if p is not None}

    def take_dirty(self) -> tuple[bool, set[str]]:
        """(every node, the nodes) whose render inputs changed since the last call."""
        with self._lock:
            out = (self.all_dirty, self.dirty)
            self.all_dirty, self.dirty = False, set()
        return out

    def _namespace(self, name: str, obj: dict[str, Any]) -> NamespaceInfo | None:
        """A Namespace's labels, from its typed object (the parse cache's)."""
        try:
            return NamespaceInfo(name, self.tracker.store.decode(obj).meta.labels)
        except NetsimError as e:
            if self.on_invalid is not None:
                self.on_invalid(obj, e)
            return None

    def _decode_pod(self, obj: dict[str, Any]) -> PodInfo | None:
        self.decoded += 1
        try:
            return pod_info(self.tracker.store.decode(obj))  # once per resourceVersion, shared
        except NetsimError as e:
            if self.on_invalid is not None:
                self.on_invalid(obj, e)
            return None

    def _overlay(self) -> None:
        """The live policies with the what-ifs on top (netsim.controlplane.whatif.overlay); only a policy
        whose overlaid form changed is parsed again. New selectors are matched against every pod once."""
        raw = whatif.overlay([self._live[k] for k in sorted(self._live)], self._whatifs.values())
        parsed: dict[NsName, tuple[dict[str, Any], NetworkPolicy | None]] = {}
        for x in raw:
            key = ((x.get("metadata") or {}).get("namespace") or "default", (x.get("metadata") or {})["name"])
            old = self._parsed.get(key)
            if old is not None and old[0] == x:
                parsed[key] = old
                continue
            self.decoded += 1
            try:
                # A stored version through the store's parse cache (parsed once per process, whichever of
                # felix, verify or trace reads it first); a what-if policy on its own (netsim.policy.stored).
                live = self._live.get(key)
                parsed[key] = (x, decode_policy(self.tracker.store, x, stored=live is not None and live == x))
            except Exception as e:  # noqa: BLE001 - one bad policy must not stop the others
                parsed[key] = (x, None)
                if self.on_invalid is not None:
                    self.on_invalid(x, e)
        before = {p.key: p for _, p in self._parsed.values() if p is not None}
        self._parsed = parsed
        self.policies = [p for _, p in parsed.values() if p is not None]
        after = {p.key: p for p in self.policies}
        for pkey in set(before) | set(after):  # a changed policy: the nodes it was and is active on
            if before.get(pkey) == after.get(pkey):
                continue
            self.dirty |= self.active_nodes(pkey)
            policy = after.get(pkey)
            if policy is None:
                self.selected.pop(pkey, None)
                continue
            self.selected[pkey] = {k for k, p in self.pods.items() if policy.selects(p.namespace, p.labels)}
            self.dirty |= self.active_nodes(pkey)
        self._set_users = {}
        for policy in self.policies:
            for peer in selector_peers(policy):
                self._set_users.setdefault(selector_set_name(peer_selector(policy, peer)), set()).add(policy.key)
        self._named = {p.key for p in self.policies
                       if any(port.named for rule in (*p.ingress, *p.egress) for port in rule.ports)}
        self.index.prune(self.policies)
        for policy in self.policies:
            for peer in selector_peers(policy):
                self.index.ensure(self.model, policy, peer, self.pods)

    def inputs(self) -> tuple[list[NamespaceInfo], list[PodInfo], list[NetworkPolicy]]:
        """Namespaces, pods and policies as a node's render takes them (the same lists until a change)."""
        if self._inputs is None:
            self._inputs = (list(self.namespaces.values()), [self.pods[k] for k in sorted(self.pods)],
                            list(self.policies))
        return self._inputs

    def selector_members(self, policy: NetworkPolicy, peer: Peer) -> list[str]:
        """The members of a selector set, for the renderer (netsim.policy.felix.SelectorMembers)."""
        name = selector_set_name(peer_selector(policy, peer))
        with self._lock:
            if name not in self.index.selectors:
                self.index.ensure(self.model, policy, peer, self.pods)
            return self.index.ips(name, self.pods)


EventFn = Callable[[str, str, str, str, float], None]  # (object ref, reason, message, actor, ms)


class Felix:
    """felix on every node of a cluster: one calculation graph, one node agent per node (module docstring).
    `sync(live_nodes, endpoints)` once per pass after a felix kind changed."""

    def __init__(self, cluster: str, nodes: Iterable[str], kernel: Kernel, store: Any, events: EventFn,
                 on_invalid: InvalidFn | None = None,
                 guard: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
                 watch: WatchDelays | None = None):
        self.agents = {name: FelixAgent(kernel, naming.node_ns(cluster, name), name) for name in nodes}
        self.watch = watch  # spec.timing's watch delay per node (netsim.node.watch_delay); None: none
        self.calc = FelixCalc(store, on_invalid)
        self.events = events
        self.guard = guard or (lambda name: contextlib.nullcontext())
        self._synced: dict[str, tuple[Any, ...]] = {}  # node -> its endpoints when it was last programmed
        self._pending: set[str] = set()  # nodes whose inputs changed since they were last programmed

    def forget(self, node: str) -> None:
        """The node's state is unknown (it failed): program it in full next time."""
        self._synced.pop(node, None)

    def sync(self, live_nodes: Iterable[str], endpoints: Callable[[str], list[WorkloadEndpoint]],
             pool: Executor | None = None) -> list[str]:
        """Bring the calculation graph up to date, then program the nodes whose inputs changed (the
        calculation graph's dirty nodes, a node whose endpoints changed, one never programmed); returns
        them. As felix's calculation graph sends each host only the updates that touch its endpoints, a
        change programs the nodes it concerns, not every node."""
        self.calc.update()
        every, dirty = self.calc.take_dirty()
        self._pending |= set(self.agents) if every else dirty & set(self.agents)
        namespaces, pods, policies = self.calc.inputs()
        todo: dict[str, tuple[list[WorkloadEndpoint], tuple[Any, ...]]] = {}
        for name in live_nodes:
            if name not in self.agents:
                continue
            eps = endpoints(name)
            mark = tuple((e.namespace, e.name, e.ip, e.iface) for e in eps)
            if name in self._pending or self._synced.get(name) != mark:
                todo[name] = (eps, mark)
            elif self.watch is not None:
                self.watch.seen(name)
        if self.watch is not None:
            # each node's felix hears of the first change it missed its watch delay later (then programs the
            # state of that moment)
            now = time.monotonic()
            self.watch.changed(todo, now)
            due = set(self.watch.due(now))
            todo = {n: v for n, v in todo.items() if n in due}

        def sync(name: str) -> None:
            eps, mark = todo[name]
            with self.guard(f"felix/{name}"):
                report = self.agents[name].sync(eps, namespaces, pods, policies,
                                                selector_members=self.calc.selector_members)
            self._synced[name] = mark
            self._pending.discard(name)
            if self.watch is not None:
                self.watch.seen(name)
            self.events(f"node/{name}", "PolicySynced", f"{report.endpoints} endpoints, {report.policies} "
                        f"policies, {report.chains} chains, {report.ipsets} ipsets", f"felix/{name}",
                        report.ms)
        if pool is None:
            for name in todo:
                sync(name)
        else:
            fan_out(pool, sync, list(todo))
        return list(todo)


__all__ = ["CalcReport", "Felix", "FelixCalc", "SelectorIndex", "pod_info"]
