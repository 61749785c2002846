"""netsim's Python API: a running cluster as an object.

    from netsim import Cluster
    with Cluster.up("clusters/three-node-calico.yaml") as c:      # or Cluster.up() for the default
        c.apply("manifests/web.yaml")
        results = c.probe(frm="default/client", to="svc/default/web", ports=[80])
        assert all(r.connected for r in results)
    # leaving the block runs c.down()

`Cluster(name)` attaches to a cluster that is already running (built by `netsim up`). Everything the CLI,
the scenario runner and the pytest plugin do to a cluster goes through these methods (the CLI gets its
Cluster from netsim.cli.front). On this machine they need root; with the kernel and store injected
(`Cluster.up(spec, kernel=FakeKernel(), store=MemoryStore())`, netsim.inprocess) the cluster lives in the
process and nothing outside it is touched.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netsim import daemonctl, daemonproc, naming, preflight, state, storefactory
from netsim.controlplane import objects as o
from netsim.controlplane.admission import admit
from netsim.controlplane.deletion import Target, delete_objects
from netsim.controlplane.writes import admit_object
from netsim.daemonctl import DaemonDown, DaemonError
from netsim.daemonfiles import FAILED_ANNOTATION
from netsim.daemonlink import DaemonLink, NoDaemon, ProcessDaemon
from netsim.model.errors import Source, SpecError, UsageError
from netsim.model.generic import CustomKind, custom_kinds_from
from netsim.model.limits import MAX_REPLICAS
from netsim.model.loader import load_sourced, object_ref, parse_documents, parse_mappings
from netsim.model.registry import is_emulated
from netsim.model.registry import namespaced as kind_namespaced
from netsim.model.selectors import LabelSelector
from netsim.model.targets import (
    HOST,
    IP,
    IP_PORT,
    NODE,
    POD,
    PODS,
    SERVICE,
    Selector,
    SelectorError,
    parse_source,
    parse_target,
)
from netsim.store import Compacted, Conflict, SQLiteStore, Store, StoreError, copy_manifest, identity

if TYPE_CHECKING:
    import subprocess

    from netsim.kernel.api import Kernel, KernelError
    from netsim.lifecycle import DownReport
    from netsim.model.cluster import ClusterSpec
    from netsim.probe.engine import ProbeResult

# What only some verbs need (the probe engine, rollouts, conditions, policy, trace, drawing) is imported by
# the methods that use it: every CLI command imports this module, and `netsim apply` pays for each import
# on every call (tests/unit/cli/test_cli_imports.py).

# Re-exported for the front door's users (the CLI imports nothing below netsim.api but pure modules).
__all__ = ["CONVERGE_TIMEOUT", "Cluster", "Conflict", "DaemonDown", "DaemonError", "DaemonLink", "DownReport",
           "Endpoint", "KernelError", "NoDaemon", "ProbeEndpoint", "ProcessDaemon", "Target", "check_scale",
           "resolve_spec", "results_json"]

CONVERGE_TIMEOUT = 120.0  # seconds a command waits for the daemon to reflect its writes

# Kinds that own no pod, directly or through the ReplicaSet or Job they own: the controllers that make pods
# (kube-controller-manager's ReplicaSet, ReplicationController, StatefulSet, DaemonSet and Job controllers,
# the Deployment and CronJob controllers above two of them; netsim's Knative emulation above a Deployment)
# never set one of these as a controller ownerReference. `apply` of only these waits for the data plane and
# lists no pod: at 1,000 pods the wait decoded every one of them, in the CLI, while the daemon worked.
NO_POD_OWNER_KINDS = frozenset({"Service", "EndpointSlice", "Endpoints", "ConfigMap", "Secret", "NetworkPolicy",
                                "Namespace", "ServiceAccount", "Ingress", "PodDisruptionBudget",
                                "HorizontalPodAutoscaler", "CustomResourceDefinition"})


def __getattr__(name: str) -> Any:
    """`DownReport` (re-exported) comes from netsim.lifecycle, the builders of namespaces, `KernelError` from
    the kernel interface: imported when asked for, not by every command that attaches to a cluster (PEP 562)."""
    if name == "DownReport":
        from netsim.lifecycle import DownReport
        return DownReport
    if name == "KernelError":
        from netsim.kernel.api import KernelError
        return KernelError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class ProbeEndpoint:
    """Something a probe goes from or to: its label (`ns/pod`, `node/n`, `host/h`, `svc/ns/name`), the
    namespace it lives in (sources) and its address."""

    label: str
    netns: str | None
    ip: str | None
    pod: dict[str, Any] | None = None


# The old name: an EndpointSlice's endpoint is netsim.model.endpointslice.Endpoint, the one class of that
# concept; this is the end of a probe.
Endpoint = ProbeEndpoint


def resolve_spec(spec: ClusterSpec | str | Path | Mapping[str, Any] | None, name: str | None) -> ClusterSpec:
    """What `Cluster.up` builds: the default cluster, a spec file, a Cluster document as a dict (apiVersion
    and kind may be left out) or a ClusterSpec, renamed to `name` when given. Invalid input raises
    SpecError naming the field."""
    from netsim.model.cluster import default_cluster, load_cluster_file, parse_cluster
    if spec is None:
        return default_cluster(name or "demo")
    if isinstance(spec, (str, Path)):
        return load_cluster_file(str(spec), name_override=name)
    if isinstance(spec, Mapping):
        return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", **spec}, Source("<dict>"),
                             name_override=name)
    if name:
        return parse_cluster({**spec.to_dict(), "metadata": {"name": name}}, Source(spec.source))
    return spec


# Kinds served with a /scale subresource (apps/v1 Deployment, ReplicaSet, StatefulSet; netsim has no
# ReplicationController). kubectl scale asks the API server for <resource>/scale, which answers 404 for
# any other kind.
SCALABLE_KINDS = ("Deployment", "ReplicaSet", "StatefulSet")


def check_scale(kind: str, replicas: int) -> None:
    """Refuse what kubectl scale and the API server refuse, before anything is written (UsageError, exit 2):
    a negative count (kubectl scale.go Validate), a kind without a scale subresource (the server's 404), a
    count over netsim's bound (the model's spec.replicas maximum)."""
    if replicas < 0:
        raise UsageError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    if kind not in SCALABLE_KINDS:
        raise UsageError(f"Error from server (NotFound): the server could not find the requested resource "
                         f"({kind} has no scale subresource; only {', '.join(SCALABLE_KINDS)} can be scaled)")
    if replicas > MAX_REPLICAS:
        raise UsageError(f"--replicas {replicas}: spec.replicas must be at most {MAX_REPLICAS} (netsim's bound: "
                         "every replica is a network namespace on this host)")


class Cluster:
    """A cluster as an object: `Cluster(name)` attaches to a running one (the only one when `name` is
    None). What it acts with is injected, the real ones being the defaults: `kernel` (a
    netsim.kernel.api.Kernel; default a LinuxKernel made when first needed), `store` (default the
    cluster's own, netsim.storefactory.open_store), `cluster_state` (what was built: nodes, hosts and their
    namespaces; default read from the state directory) and `daemon` (who acts on the store,
    netsim.daemonlink; default the cluster's daemon process). Injected ones are the caller's: `close`
    leaves them open. `Cluster.up(..., store=MemoryStore(), kernel=FakeKernel())` builds a cluster that
    lives only in them (see `up`), which is how the CLI is tested in process."""

    def __init__(self, name: str | None = None, *, kernel: Kernel | None = None, store: Store | None = None,
                 cluster_state: state.ClusterState | None = None, daemon: DaemonLink | None = None):
        st = cluster_state if cluster_state is not None else state.resolve_cluster(name)
        self.name = st.name
        self._spec_doc = st.spec
        self._spec: ClusterSpec | None = None
        self._state = cluster_state  # None: read from the state directory whenever asked
        self._store = store
        self._kernel = kernel
        self._owns_store = store is None
        self._owns_kernel = kernel is None
        self.daemon: DaemonLink = daemon if daemon is not None else ProcessDaemon(self.name)

    @property
    def spec(self) -> ClusterSpec:
        """The cluster's spec, parsed when first asked for: `netsim apply` of an EndpointSlice or a Pod
        never needs it (only a Service's allocations and the policy warning do), and the cluster model is
        a good part of a command's start-up (issue #16 item 2)."""
        if self._spec is None:
            from netsim.model.cluster import parse_cluster
            self._spec = parse_cluster(self._spec_doc, Source(self.name))
        return self._spec

    # -- lifecycle -----------------------------------------------------------------------------------
    @classmethod
    def up(cls, spec: ClusterSpec | str | Path | Mapping[str, Any] | None = None, *, name: str | None = None,
           timeout: float = 60.0, daemon: bool = True, kernel: Kernel | None = None, store: Store | None = None,
           progress: Callable[[str], None] | None = None) -> Cluster:
        """Build a cluster from a ClusterSpec, a spec file, a Cluster document as a dict (apiVersion and kind
        may be left out, as in the pytest marker) or the default; start its agents, wait until ready.

        `kernel`: build in this kernel (the caller's: not closed); default a LinuxKernel of its own. Without
        `store` the cluster is built on this machine, after the root, tool and kernel-feature checks. `store`: the cluster lives in this process only, on this
        store and `kernel` (netsim.inprocess: the node network built in the kernel, the store bootstrapped
        as the daemon does, no state directory, no daemon process; `daemon` then says whether the
        controllers run in process on each wait). `progress` is told each step of the build."""
        from netsim import lifecycle
        spec = resolve_spec(spec, name)
        if store is not None:
            from netsim.inprocess import build
            k = kernel if kernel is not None else _linux_kernel()
            st = build(k, spec, store, progress)
            return cls(spec.name, kernel=k, store=store, cluster_state=st,
                       daemon=NoDaemon(store, controllers=daemon))
        # Built on this machine (a state directory, namespaces under /run/netns, a daemon process), whichever
        # Kernel object drives it: the same checks for an injected one.
        preflight.require_root("up")
        preflight.require_tools()
        preflight.require_kernel_features()
        k = kernel if kernel is not None else _linux_kernel()
        try:
            lifecycle.up(k, spec, progress or (lambda _: None), daemon=daemon)
            if daemon:
                if progress is not None:
                    progress("starting the control plane and node agents")
                try:
                    daemonctl.start(spec.name, timeout=timeout)
                except BaseException:
                    lifecycle.down(k, spec.name)
                    raise
        finally:
            if kernel is None:
                k.close()
        return cls(spec.name, kernel=kernel)

    @classmethod
    def revive(cls, name: str, *, timeout: float = 60.0, kernel: Kernel | None = None) -> tuple[Cluster, int] | None:
        """A cluster `name` that is built (phase ready) but whose daemon is not running gets a new daemon,
        which adopts the pods' sandboxes (what `netsim up` does for an existing cluster): (the cluster,
        the new daemon's pid). None when there is no such cluster or its daemon runs."""
        existing = state.load(name)
        if existing is None or existing.phase != "ready" or daemonctl.alive(name):
            return None
        pid = daemonctl.start(name, timeout=timeout)
        return cls(name, kernel=kernel), pid

    def down(self, *, kernel: Kernel | None = None) -> DownReport:
        """Remove everything the cluster made (its daemon, namespaces, state); idempotent. An in-process
        cluster (built with `up(store=...)`) removes its namespaces from its kernel."""
        k = kernel if kernel is not None else self._kernel if not self._owns_kernel else None
        if self._state is not None:  # lives in process: no daemon, no state directory
            from netsim.inprocess import teardown
            report = teardown(k if k is not None else self.kernel, self._state)
            self.close()
            return report
        self.close()
        return Cluster.remove(self.name, kernel=k)

    @staticmethod
    def remove(name: str, *, kernel: Kernel | None = None) -> DownReport:
        """`netsim down --name`: remove cluster `name`, also one left half-built by a crash (no Cluster
        object can be made of it)."""
        from netsim import lifecycle
        k = kernel if kernel is not None else _linux_kernel()
        try:
            return lifecycle.down(k, name)
        finally:
            if kernel is None:
                k.close()

    @staticmethod
    def remove_all(*, kernel: Kernel | None = None) -> list[DownReport]:
        """`netsim down --all`: every cluster with a state directory and any netsim namespace left without."""
        from netsim import lifecycle
        k = kernel if kernel is not None else _linux_kernel()
        try:
            return lifecycle.down_all(k)
        finally:
            if kernel is None:
                k.close()

    @staticmethod
    def known() -> list[str]:
        """Names of the clusters with a state directory (ready, building or left by a crash)."""
        return state.known_clusters()

    @staticmethod
    def check_name(name: str, flag: str = "--cluster") -> None:
        """A cluster name from the command line: UsageError before it reaches a path or a namespace."""
        state.check_name(name, flag)

    def close(self) -> None:
        """Release what this object opened itself (injected kernel and store stay the caller's)."""
        if self._kernel is not None and self._owns_kernel:
            self._kernel.close()
            self._kernel = None
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = storefactory.open_store(self.name)
        return self._store

    @property
    def kernel(self) -> Kernel:
        if self._kernel is None:
            self._kernel = _linux_kernel()
        return self._kernel

    @property
    def in_process(self) -> bool:
        """Built with `up(store=...)`: no state directory, no daemon process."""
        return self._state is not None

    @property
    def state(self) -> state.ClusterState:
        if self._state is not None:
            return self._state
        st = state.load(self.name)
        if st is None:
            raise UsageError(f"cluster {self.name} is gone")
        return st

    # -- what is built --------------------------------------------------------------------------------
    def build_info(self) -> dict[str, Any]:
        """What `netsim up -o json` prints: the spec's networks, the fabric, nodes and hosts with their
        namespaces and whether each is still there (netsim.lifecycle.status), the API endpoint and store."""
        from netsim import lifecycle
        if not self.in_process:
            return lifecycle.status(self.state)
        st, net = self.state, self.spec.network
        here = self.kernel.netns_exists
        return {"name": st.name, "phase": st.phase, "plugin": net.plugin, "backend": net.backend,
                "podCIDR": net.pod_cidr, "serviceCIDR": net.service_cidr, "nodeNetwork": net.node_network,
                "fabric": {"netns": st.fabric, "present": here(st.fabric) if st.fabric else False},
                "nodes": [{**n, "present": here(n["netns"])} for n in st.nodes],
                "hosts": [{**h, "present": here(h["netns"])} for h in st.hosts],
                "stateDir": None, "created": st.created, **st.extra}

    def status(self) -> dict[str, Any]:
        """What `netsim status` reports: `build_info` and the daemon (`daemon`: pid, running, expected,
        converged, pending, log, components); a convergence marker written by a daemon that is gone says
        nothing about now, so it counts only while its writer runs."""
        info = self.build_info()
        st = self.state
        if self.in_process:
            info["daemon"] = {"pid": None, "running": False, "expected": False, "converged": None, "pending": [],
                              "log": None, "components": {}}
            return info
        marker = daemonctl.read_marker(st.name) or {}
        running = self.daemon.alive()
        fresh = running and marker.get("pid") in daemonproc.find_all(st.name)
        info["daemon"] = {"pid": st.extra.get("daemonPid"), "running": running,
                          "expected": bool(st.extra.get("daemon", st.extra.get("daemonPid"))),
                          "converged": marker.get("converged") if fresh else None,
                          "pending": marker.get("pending", []) if fresh else [],
                          "log": daemonctl.log_path(st.name),
                          "components": daemonctl.read_health(st.name) if running else {}}
        info.update(daemonctl.processes(st.name))  # host agents (`agents`) and the leader (`controlPlane`)
        return info

    def daemon_down_message(self) -> str:
        """One line: the daemon is not running, and how to bring it back."""
        if self.in_process:
            return f"cluster {self.name} runs in process, without a daemon"
        return daemonctl.down_message(self.name)

    def netns_for(self, where: str, namespace: str = "default") -> str:
        """The network namespace `netsim exec` runs in: `node/N`, `host/H`, or a pod `[NS/]POD` (NS defaults
        to `namespace`) that has a sandbox. UsageError naming what is missing."""
        st = self.state
        if where.startswith("node/"):
            rec = st.node(where[5:])
            if rec is None:
                raise UsageError(f"cluster {st.name} has no node {where[5:]!r} "
                                 f"(nodes: {', '.join(n['name'] for n in st.nodes)})")
            return rec["netns"]
        if where.startswith("host/"):
            rec = st.host(where[5:])
            if rec is None:
                raise UsageError(f"cluster {st.name} has no external host {where[5:]!r}")
            return rec["netns"]
        pod_ns, _, pod = where.rpartition("/")
        ns = naming.pod_ns(st.name, pod_ns or namespace, pod)
        if not self.kernel.netns_exists(ns):
            raise UsageError(f"no pod {pod_ns or namespace}/{pod} in cluster {st.name}")
        return ns

    # -- the cluster's processes in a role (netsim agent, netsim controlplane) ---------------------------
    def role_process(self, role: str, host: str | None = None) -> tuple[list[str], str]:
        """The command line and log file of one of the cluster's processes: `agent` (the node agents of the
        nodes placed on `host`, netsim.hostagent) or `controlplane` (a control plane that leads while it
        holds the leader lease). UsageError (exit 2) for a host the spec does not name; DaemonError
        (exit 1) when that host's agent already runs."""
        from netsim import hostagent
        if role == "agent":
            hostagent.agent_nodes(self.spec, host)  # refuses a host the spec does not name
            running = hostagent.running_agents(self.name).get(host or "")
            if running:
                raise DaemonError(f"cluster {self.name}: the agent of host {host} already runs (pid {running})")
            log = hostagent.log_path(self.name, host or "")
        else:
            log = os.path.join(os.path.dirname(state.state_file(self.name)), "controlplane.log")
        return daemonproc.argv(self.name, role, host), log

    @staticmethod
    def start_process(argv: Sequence[str], log: str) -> int:
        """Start `argv` in the background in a session of its own, output to `log` (0600); its pid."""
        with state.open_private(log, "ab") as f:
            import subprocess  # (signal, selectors, locale): for the verbs that start processes
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                    start_new_session=True, close_fds=True)
        return proc.pid

    # -- the daemon ----------------------------------------------------------------------------------
    def require_daemon(self) -> None:
        """Raise DaemonDown (naming the cluster and how to restart it) unless the daemon runs: a write
        nobody acts on would only look like success."""
        self.daemon.require()

    def restart_daemon(self, timeout: float = 60.0) -> int:
        """Stop the daemon if it runs and start a new one; its kubelets adopt the existing sandboxes (as a
        restarted kubelet does). Returns the new pid once the cluster converged."""
        return self.daemon.restart(timeout)

    # -- objects -------------------------------------------------------------------------------------
    def apply(self, manifests: str | Path | Mapping[str, Any] | Sequence[Any], *, wait: bool = True,
              timeout: float = 120.0, namespace: str | None = None) -> list[str]:
        """Apply files/directories, YAML text (a str containing a newline), model objects or dicts; all
        or nothing. Returns kubectl-style lines (`deployment/web created`). `namespace`: as `kubectl apply
        -n`, the namespace of the files' and texts' objects that name none (one naming another is refused)."""
        self.require_daemon()
        where: dict[str, Source] = {}
        docs = self._documents(manifests, self.custom_kinds(), where, namespace)
        lines = []
        # SQLite has one writer at a time: while this transaction is open the daemon's passes and the node
        # leases wait for it (and give up after the busy timeout). So admission (allocations over every
        # stored Service) and the copies the store keeps run before it, on a consistent read view; inside,
        # a Service or Namespace written since that view means admission is done again there.
        with self.store.snapshot() as view:
            seen = view.current_rv()
            admitted = self._admit(view, docs, where)
        prepared = _handed_over(admitted) if isinstance(self.store, SQLiteStore) else admitted
        with self.store.transaction() as tx:
            if _admission_stale(tx, seen):
                admitted = prepared = self._admit(tx, docs, where)
            before = {}
            for d in admitted:
                ident = _ident(d)
                cur = tx.get(*ident)
                before[ident] = cur["metadata"]["resourceVersion"] if cur else None
            for d in tx.apply(prepared):
                old = before.get(_ident(d))
                verb = "created" if old is None else "unchanged" if old == d["metadata"]["resourceVersion"] \
                    else "configured"
                kind = "service.serving.knative.dev" if d["kind"] == "KnativeService" else d["kind"].lower()
                lines.append(f"{kind}/{d['metadata']['name']} {verb}")
        stored_only = [f"{d['kind']} {_key_text(d)}" for d in docs if not is_emulated(d["kind"])]
        if stored_only:
            lines.append(f"Note: stored, not emulated by netsim: {', '.join(stored_only)}")
        if any(d.get("kind") == "NetworkPolicy" for d in docs) and not self.enforces_policy:
            lines.append(f"Warning: plugin {self.spec.network.plugin} does not enforce NetworkPolicy (as with real "
                         "flannel); use calico or canal to have it enforced")
        if wait:
            self.wait_converged(timeout, docs)
        return lines

    def _admit(self, reader: Store, docs: list[dict[str, Any]], where: Mapping[str, Source]) -> list[dict[str, Any]]:
        """Admission of `docs` against what `reader` holds: allocations filled in, missing namespaces added."""
        namespaces = [o.name(n) for n in reader.list("Namespace")]
        try:
            # Only a Service needs the stored ones (its allocations); a slice or a pod alone does not
            # decode every Service of the cluster.
            stored = reader.list("Service") if any(d.get("kind") == "Service" for d in docs) else []
            return admit(docs, self.spec if any(d.get("kind") == "Service" for d in docs) else None,
                         stored, namespaces)
        except SpecError as e:  # admission (allocations, external IPs): name the file the object came from
            src = where.get(e.obj or "")
            if src is None:
                raise
            raise SpecError(e.message, source=src, obj=e.obj, field=e.field) from None

    def update(self, obj: Mapping[str, Any], *, source: str = "<update>") -> dict[str, Any]:
        """Write back a changed object (kubectl edit, label, annotate, set image): validated and admitted as
        `apply` would, compare-and-swap on its resourceVersion (a stale one is the API server's 409 Conflict,
        `store.Conflict`). Returns the stored object."""
        self.require_daemon()
        custom = self.custom_kinds()
        with self.store.transaction() as tx:
            obj = admit_object(tx, self.spec, obj, custom, source)
            return tx.update(obj, expected_rv=obj["metadata"].get("resourceVersion"))

    def custom_kinds(self) -> dict[str, CustomKind]:
        """The kinds the cluster's stored CustomResourceDefinitions define."""
        return custom_kinds_from(self.store.list("CustomResourceDefinition"))

    @staticmethod
    def _documents(manifests: str | Path | Mapping[str, Any] | Sequence[Any],
                   custom: Mapping[str, CustomKind] | None = None,
                   where: dict[str, Source] | None = None, namespace: str | None = None) -> list[dict[str, Any]]:
        """The objects as dicts; `where` gets the file (and document) each object of a file came from, so
        errors found later (admission) name the file, not `<inline>`."""
        where = {} if where is None else where

        def from_file(path: str) -> list[dict[str, Any]]:
            sourced = load_sourced([path], stdin=sys.stdin, custom=custom, namespace=namespace)
            where.update({object_ref(x): src for src, x in sourced})
            return [x.to_dict() for _, x in sourced]

        if isinstance(manifests, str) and "\n" in manifests:
            return [x.to_dict() for x in parse_documents(manifests, "<inline>", custom, namespace=namespace)]
        if isinstance(manifests, (str, Path)):
            return from_file(str(manifests))
        if isinstance(manifests, Mapping) or hasattr(manifests, "to_dict"):
            manifests = [manifests]  # one object, not a sequence of them (iterating a dict gives its keys)
        out = []
        for m in manifests:
            if isinstance(m, str) and "\n" in m:
                out += [x.to_dict() for x in parse_documents(m, "<inline>", custom, namespace=namespace)]
            elif isinstance(m, (str, Path)):
                out += from_file(str(m))
            elif hasattr(m, "to_dict"):
                out.append(m.to_dict())
            else:  # a manifest dict: validated as it is, once (no YAML round trip)
                out += [x.to_dict() for x in parse_mappings([copy_manifest(dict(m))], "<inline>", custom)]
        return out

    def delete(self, kind: str, name: str, namespace: str | None = "default", *, wait: bool = True,
               timeout: float = 120.0, grace_period: int | None = None, force: bool = False) -> None:
        """Delete one object as `netsim delete` does (pods through the kubelet's termination)."""
        ns = namespace if kind_namespaced(kind, self.custom_kinds()) else None
        self.delete_objects([Target(kind, ns, name)], grace_period=grace_period, force=force, wait=wait,
                            timeout=timeout)

    def delete_objects(self, targets: Sequence[Target], *, grace_period: int | None = None, force: bool = False,
                       ignore_not_found: bool = False, wait: bool = True, timeout: float = 120.0) -> list[str]:
        """Delete all `targets` or none (UsageError naming the missing one); pods bound to a node are
        marked for deletion and removed by their kubelet once the sandbox is gone (see
        netsim.controlplane.deletion). With `wait`, returns after the cluster converged."""
        self.require_daemon()
        import time
        lines = delete_objects(self.store, targets, time.time(), grace_period=grace_period, force=force,
                               ignore_not_found=ignore_not_found)
        if wait:
            self.wait_converged(timeout)
        return lines

    def get(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.store.list(kind, namespace)

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return sorted(self.store.list("Pod", namespace), key=lambda p: o.key(p))

    def scale(self, kind: str, name: str, replicas: int, namespace: str = "default", *, wait: bool = True,
              timeout: float = 120.0) -> dict[str, Any]:
        """Set a Deployment's, ReplicaSet's or StatefulSet's replicas (kubectl scale); returns the stored
        object. With `wait`, until its pods (never the rest of the cluster) are ready."""
        check_scale(kind, replicas)
        self.require_daemon()
        obj = self.store.get(kind, namespace, name)
        if obj is None:
            raise UsageError(f'{kind.lower()} "{name}" not found in namespace {namespace}')
        obj["spec"]["replicas"] = replicas
        obj = self.store.update(obj)
        if wait:
            self.wait_converged(timeout, [obj])  # its pods, never the rest of the cluster
        return obj

    def set_image(self, name: str, image: str, namespace: str = "default", container: str | None = None, *,
                  env: dict[str, str] | None = None, wait: bool = False) -> None:
        """Change a Deployment's pod template (a rollout), like `kubectl set image` / `set env`."""
        self.require_daemon()
        d = self.store.get("Deployment", namespace, name)
        if d is None:
            raise UsageError(f"Deployment {namespace}/{name} not found")
        d = copy.deepcopy(d)
        for c in d["spec"]["template"]["spec"]["containers"]:
            if container in (None, c["name"]):
                if image:
                    c["image"] = image
                for k, v in (env or {}).items():
                    c.setdefault("env", [])
                    c["env"] = [e for e in c["env"] if e.get("name") != k] + [{"name": k, "value": v}]
        self.store.update(d)
        if wait:
            self.wait_rollout(name, namespace)

    def rollout_undo(self, name: str, namespace: str = "default", to_revision: int = 0) -> str:
        self.require_daemon()
        from netsim.controlplane import rollout as ro
        try:
            return ro.undo(self.store, namespace, name, to_revision)
        except StoreError as exc:
            raise UsageError(str(exc)) from None

    def rollout_status(self, name: str, namespace: str = "default") -> tuple[str, bool]:
        """kubectl rollout status's message for a Deployment now, and whether the rollout is complete."""
        d = self.store.get("Deployment", namespace, name)
        if d is None:
            raise UsageError(f'deployment "{name}" not found')
        from netsim.controlplane import rollout as ro
        return ro.rollout_status(d)

    def rollout_history(self, name: str, namespace: str = "default") -> list[tuple[int, str | None]]:
        """(revision, change cause) of a Deployment's ReplicaSets, oldest first (kubectl rollout history)."""
        from netsim.controlplane import rollout as ro
        return ro.rollout_history(self.store, namespace, name)

    def wait_rollout(self, name: str, namespace: str = "default", timeout: float = 120.0) -> str:
        import time

        from netsim.controlplane import rollout as ro
        deadline = time.monotonic() + timeout
        while True:
            d = self.store.get("Deployment", namespace, name)
            if d is None:
                raise UsageError(f"Deployment {namespace}/{name} not found")
            msg, done = ro.rollout_status(d)
            if done:
                return msg
            if time.monotonic() > deadline:
                raise daemonctl.DaemonError(f"rollout of {namespace}/{name} did not finish: {msg}")
            time.sleep(0.05)

    def wait_converged(self, timeout: float = 120.0, applied: Sequence[Mapping[str, Any]] = ()) -> None:
        """Wait until the daemon has caught up. Without `applied`: until nothing is pending anywhere. With
        `applied` (what `apply` wrote): until the data plane has caught up and the pods among those objects
        and the pods they own are Running and Ready (or Succeeded), whatever other pods do. Raises
        DaemonError (exit 1) naming each of them that is not ready and why, on timeout, or at once when one
        cannot become ready (its sandbox failed, or it Failed for good)."""
        after = self.store.current_rv()
        if not applied:
            self.daemon.wait_converged(after, timeout)
            return
        roots: set[str] = set()
        custom = self.custom_kinds() if any(d.get("kind") not in NO_POD_OWNER_KINDS for d in applied) else {}
        for d in applied:
            md = d.get("metadata") or {}
            kind = d.get("kind") or ""
            if kind in NO_POD_OWNER_KINDS or not is_emulated(kind):
                continue
            ns = (md.get("namespace") or "default") if kind_namespaced(kind, custom) else None
            cur = self.store.get(kind, ns, md.get("name") or "")
            if cur is not None and o.uid(cur):
                roots.add(o.uid(cur) or "")

        def pods_waited_for(marker: dict[str, Any], seen: int) -> list[str]:
            from netsim.controlplane import readiness  # the Pod model: for waits that look at pods
            # Typed, through the store's parse cache (a pod that does not parse is left out, logged once).
            pods = readiness.owned_pods(self.store.typed_list("Pod"),
                                        self.store.typed_list("ReplicaSet") + self.store.typed_list("Job"), roots)
            failed = marker.get("failed") or {}
            bad = [f"pod {p.meta.key}: {failed[p.meta.key]}" for p in pods if p.meta.key in failed]
            if bad:
                raise daemonctl.DaemonError("; ".join(bad) + " (see netsim events; it is retried with backoff)")
            # Failed for good, as seen by a pass that began after the pod's last write (the phase and the
            # container statuses are written at different points of one pass).
            hopeless = [p for p in pods if readiness.hopeless(p) and seen >= (p.meta.resource_version or 0)]
            if hopeless:
                raise daemonctl.DaemonError("cannot become ready: " + "; ".join(readiness.summary(hopeless)))
            return readiness.summary(p for p in pods if not readiness.settled(p))

        caught_up: list[int] = []  # with host agents: the store's rv each of them must have read (below)

        def check(marker: dict[str, Any]) -> list[str]:
            if marker.get("blockers"):
                return list(marker["blockers"])
            seen = int(marker.get("rv") or 0)
            waiting = pods_waited_for(marker, seen) if roots else []  # no root: no pod to wait for, none listed
            if waiting or not marker.get("agents"):
                return waiting
            # Host agents (netsim.hostagent): the pods became ready in one process and are served by others
            # (another host's kube-proxy, its CoreDNS). Every process must have read the store as of when the
            # pods were found settled, and then once more as of when that was so: the second round covers
            # what the leader wrote in answer (EndpointSlices) before its quiet pass (daemonctl.read_marker).
            if not caught_up or (len(caught_up) < 2 and seen >= caught_up[-1]):
                caught_up.append(self.store.current_rv())
            if seen < caught_up[-1]:
                return [f"host agents {', '.join(marker['agents'])}: catching up with rv {caught_up[-1]}"]
            return []

        self.daemon.wait_for(after, timeout, check)

    # -- what happened ------------------------------------------------------------------------------
    def events(self) -> list[Any]:
        """The control-plane timeline (netsim.controlplane.events.Event), oldest first."""
        from netsim.controlplane.events import list_events
        return list_events(self.store)

    def watch_events(self) -> Iterator[Any]:
        """The timeline, then each new event as it is recorded (netsim events -w)."""
        from netsim.controlplane.events import watch_events
        return watch_events(self.store)

    def log_files(self, pod: str, namespace: str = "default", container: str | None = None, *,
                  previous: bool = False) -> list[str]:
        """The log files of a pod's containers (one container's with `container`) that exist; `previous`:
        those of the instance before the last restart."""
        import glob
        import os
        suffix = ".previous" if previous else ""
        if container:
            path = naming.container_log(self.name, namespace, pod, container) + suffix
            return [path] if os.path.exists(path) else []
        return sorted(glob.glob(glob.escape(naming.container_log_prefix(self.name, namespace, pod)) + "*.log" + suffix))

    # -- faults --------------------------------------------------------------------------------------
    def kill_pod(self, name: str, namespace: str = "default", *, wait: bool = True, timeout: float = 60.0) -> None:
        """Destroy a pod's sandbox out from under the kubelet (its interface first, then the netns), as a
        crash would. With `wait`, return once the kubelet has made a new sandbox and the cluster has
        converged again (endpoints and proxy rules follow the new IP)."""
        self.require_daemon()
        netns = naming.pod_ns(self.name, namespace, name)
        if not self.kernel.netns_exists(netns):
            raise UsageError(f"pod {namespace}/{name} has no sandbox in cluster {self.name}")
        self.kernel.link_del(netns, "eth0")
        self.kernel.netns_delete(netns)
        if wait:
            self.wait_healed(name, namespace, timeout)

    def wait_healed(self, name: str, namespace: str = "default", timeout: float = 60.0) -> None:
        """After a kill: wait until the kubelet has given the pod a new sandbox and it is Ready (or the pod
        went away, replaced by its controller), then until the cluster converged on it."""
        import time
        netns = naming.pod_ns(self.name, namespace, name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.daemon.require()  # nobody would make the new sandbox
            stored = self.store.get("Pod", namespace, name)
            pod = self._typed_pod(stored) if stored is not None else None
            if pod is None or pod.meta.deletion_timestamp:
                break
            if self.kernel.netns_exists(netns) and pod.status.pod_ip and pod.status.ready:
                break
            time.sleep(0.05)
        self.wait_converged(max(1.0, deadline - time.monotonic()))

    def node_fail(self, name: str) -> None:
        self.set_node_failed(name, True)

    def node_restore(self, name: str) -> None:
        self.set_node_failed(name, False)

    def set_node_failed(self, name: str, failed: bool) -> None:
        """Mark a node failed (cut off, its agents stopped) or restored. The daemon writes the Node's
        heartbeat every second, so the read-modify-write retries on a lost compare-and-swap, as a controller
        re-reads and retries on the API server's 409."""
        self.require_daemon()
        for _ in range(20):
            obj = self.store.get("Node", None, name)
            if obj is None:
                raise UsageError(f"cluster {self.name} has no node {name!r}")
            ann = obj["metadata"].setdefault("annotations", {})
            if failed:
                ann[FAILED_ANNOTATION] = "true"
            else:
                ann.pop(FAILED_ANNOTATION, None)
            try:
                self.store.update(obj)
                return
            except Conflict:
                continue
        raise UsageError(f"node {name}: kept losing the update to concurrent writers; try again")

    # -- where things are ----------------------------------------------------------------------------
    def sources(self, selector: str | Selector) -> list[ProbeEndpoint]:
        sel = parse_source(selector) if isinstance(selector, str) else selector
        return self._resolve(sel)

    def _resolve(self, sel: Selector) -> list[ProbeEndpoint]:
        st = self.state
        if sel.kind in (POD, PODS):
            out = []
            for p in self.pods():
                ns, name = o.namespace(p) or "default", o.name(p)
                if sel.kind == POD and (ns, name) != (sel.namespace, sel.name):
                    continue
                if sel.kind == PODS and sel.namespace != "*" and ns != sel.namespace:
                    continue
                typed = self._typed_pod(p)
                ip = typed.status.pod_ip
                if not ip or typed.status.phase in ("Succeeded", "Failed") or typed.meta.deletion_timestamp:
                    continue
                netns = naming.node_ns(self.name, typed.spec.node_name or "") if typed.spec.host_network \
                    else naming.pod_ns(self.name, ns, name)
                out.append(ProbeEndpoint(f"{ns}/{name}", netns, ip, p))
            if sel.kind == POD and not out:
                raise UsageError(f"no running pod {sel.text} in cluster {self.name}")
            return out
        if sel.kind == NODE:
            rec = st.node(sel.name or "")
            if rec is None:
                raise UsageError(f"cluster {self.name} has no node {sel.name!r}")
            return [ProbeEndpoint(sel.text, rec["netns"], rec["ip"])]
        if sel.kind == HOST:
            rec = st.host(sel.name or "")
            if rec is None:
                raise UsageError(f"cluster {self.name} has no external host {sel.name!r}")
            return [ProbeEndpoint(sel.text, rec["netns"], rec["ip"])]
        raise UsageError(f"{sel.text} cannot be resolved here")

    def service(self, namespace: str, name: str) -> dict[str, Any]:
        svc = self.store.get("Service", namespace, name)
        if svc is None:
            raise UsageError(f"no Service {namespace}/{name} in cluster {self.name}")
        return svc

    def targets(self, selector: str | Selector, ports: Sequence[int] | None, protocols: Sequence[str] | None,
                via: str = "pod") -> list[tuple[str, str, int, str]]:
        """(label, ip, port, protocol) for every target, port and protocol a probe should try."""
        sel = parse_target(selector) if isinstance(selector, str) else selector
        protos = [p.upper() for p in protocols] if protocols else None
        out: list[tuple[str, str, int, str]] = []
        if sel.kind == SERVICE:
            svc = self.store.decode(self.service(sel.namespace or "default", sel.name or ""))  # the parse cache's
            ip = svc.cluster_ip
            if not ip or ip == "None":
                raise UsageError(f"Service {sel.namespace}/{sel.name} has no cluster IP (headless?)")
            for p in svc.ports:
                if (ports and p.port not in ports) or (protos and p.protocol not in protos):
                    continue
                out.append((sel.text, ip, p.port, p.protocol))
            return out
        if sel.kind == IP_PORT:
            return [(sel.text, sel.ip, sel.port, proto) for proto in (protos or ["TCP"])]
        if sel.kind == IP:
            if not ports:
                raise UsageError(f"say which ports to probe on {sel.ip} (--ports)")
            return [(sel.text, sel.ip, port, proto) for port in ports for proto in (protos or ["TCP"])]
        for ep in self._resolve(sel):
            declared = _declared_ports(ep.pod) if ep.pod else []
            pairs = [(port, proto) for port in ports for proto in (protos or ["TCP"])] if ports else \
                [(port, proto) for port, proto in declared if not protos or proto in protos]
            for port, proto in pairs:
                if via == "service" and ep.pod is not None:
                    vip, sport = self._service_for(ep.pod, port, proto)
                    out.append((ep.label, vip, sport, proto))
                else:
                    out.append((ep.label, ep.ip or "", port, proto))
        return out

    def _service_for(self, pod: dict[str, Any], port: int, proto: str) -> tuple[str, int]:
        """A Service selecting `pod` whose target port reaches `port` (as the e2e netpol suite probes)."""
        typed = self._typed_pod(pod)
        ns = typed.meta.namespace or "default"
        named = {cp.name: cp.container_port for _, cp in typed.spec.all_ports() if cp.name}
        for svc in self.store.typed_list("Service", ns):  # the parse cache's typed Services
            if not svc.selector or not svc.cluster_ip or svc.cluster_ip == "None":
                continue
            if any(typed.meta.labels.get(k) != v for k, v in svc.selector.items()):
                continue
            for p in svc.ports:
                tp = named.get(p.target_port) if isinstance(p.target_port, str) else p.target_port
                if tp == port and p.protocol == proto:
                    return svc.cluster_ip, p.port
        raise UsageError(f"no Service selects pod {o.key(pod)} on port {port}/{proto}; "
                         "create one or probe with --via pod")

    # -- probing -------------------------------------------------------------------------------------
    def probe(self, frm: str = "*/*", to: str = "*/*", ports: Sequence[int] | None = None,
              protocols: Sequence[str] | None = None, *, via: str = "pod", count: int = 1,
              timeout: float = 2.0) -> list[ProbeResult]:
        try:
            sources = self.sources(frm)
            targets = self.targets(to, ports, protocols, via)
        except SelectorError as exc:
            raise UsageError(str(exc)) from None
        from netsim.probe.engine import Probe, run_probes
        probes = [Probe(s.netns or "", s.label, ip, port, proto, timeout, to=label)
                  for s in sources for (label, ip, port, proto) in targets]
        return run_probes(self.kernel, probes, count=count)

    # -- traffic load ---------------------------------------------------------------------------------
    def load(self, frm: str, to: str, *, port: int | None = None, protocol: str = "TCP",
             rate: float | None = None, duration: float = 10.0, connections: int | None = None,
             timeout: float = 1.0, png: str | None = None, stop: Any = None) -> dict[str, Any]:
        """Send requests from every source `frm` selects (round robin) to one target for `duration` seconds:
        open loop at `rate` requests/s, or closed loop over `connections` clients. Returns the report of
        netsim.load.report (the `netsim load -o json` document); `png` also writes its picture."""
        import time

        from netsim.controlplane.events import list_events
        from netsim.load import generator, plot

        proto = protocol.upper()
        if proto not in generator.PROTOCOLS:
            raise UsageError(f"load --protocol must be TCP or UDP, not {protocol}")
        try:
            sources = self.sources(frm)
            targets = self.targets(to, [port] if port else None, [proto])
        except SelectorError as exc:
            raise UsageError(str(exc)) from None
        if not sources:
            raise UsageError(f"load --from {frm}: selects no running pod, node or host")
        if not targets:
            raise UsageError(f"load --to {to}: no {proto} port to send to" + ("" if port else " (give --port)"))
        if len({(ip, p) for _l, ip, p, _pr in targets}) > 1:
            ports = sorted({p for _l, _ip, p, _pr in targets})
            raise UsageError(f"load --to {to}: several targets/ports ({', '.join(map(str, ports))}); "
                             "say which with --port, or name one pod")
        label, ip, tport, _ = targets[0]
        started = time.time()
        try:
            rec = generator.run_load(self.kernel, [generator.Source(s.label, s.netns or "") for s in sources],
                                     generator.Target(ip, tport, proto), duration=duration, rate=rate,
                                     connections=connections, timeout=timeout, stop=stop)
        except ValueError as exc:
            raise UsageError(f"load: {exc}") from None
        report = rec.report(target=f"{label} ({ip}:{tport}/{proto})", sources=[s.label for s in sources],
                            startedAt=started, elapsedS=round(time.time() - started, 3))
        events = [e for e in list_events(self.store) if e.time >= started]
        report["events"] = [{"second": round(at, 3), "event": text}
                            for at, text in plot.marks(events, started, duration)]
        if png:
            plot.write_png(report, png, [(m["second"], m["event"]) for m in report["events"]])
        return report

    # -- NetworkPolicy -------------------------------------------------------------------------------
    @property
    def enforces_policy(self) -> bool:
        return self.spec.network.plugin in ("calico", "canal")

    def _policy_pairs(self, frm: str | None, to: str | None, *,
                      outside: bool = False) -> tuple[list[ProbeEndpoint], list[ProbeEndpoint]]:
        """Sources and destinations of a verification: pods (by default every pod outside kube-system);
        with `outside`, `node/N` and `host/H` sources too. Destinations are pods. An empty side is bad
        input (UsageError): a verification of nothing must not pass."""
        def pick(sel: str | None, side: str, others: bool) -> list[ProbeEndpoint]:
            try:
                eps = self.sources(sel or "*/*")
            except SelectorError as exc:
                raise UsageError(f"verify --{side}: {exc}") from None
            if sel is None:  # by default the workloads, not the cluster's own system pods
                eps = [e for e in eps if not e.label.startswith("kube-system/")]
            eps = [e for e in eps if e.pod is not None or (others and e.label.startswith(("node/", "host/")))]
            if not eps:
                raise UsageError(f"verify --{side} {sel or '*/*'}: selects no running pod"
                                 + (", node or external host" if others else "") + f" in cluster {self.name}")
            return eps
        return pick(frm, "from", outside), pick(to, "to", False)

    def verify(self, frm: str | None = None, to: str | None = None, ports: Sequence[int] | None = None,
               protocols: Sequence[str] | None = None, *, via: str = "pod", timeout: float = 0.5,
               extra_policies: Sequence[Any] = ()):
        """The policy model's verdict for every (source, destination pod, port, protocol) beside a probe of
        the same on the kernel. A refused connection counts as allowed by policy (the packet reached the
        pod; nothing listened), a timeout as blocked (policy drops silently, as calico's DROP does).

        Sources are pods, nodes (`node/N`) and external hosts (`host/H`). A node's packet is judged with
        the source address it really carries at the destination (netsim.policy.paths); a host reaches
        pods only through NodePort/LoadBalancer Services, so it is probed on every node's NodePort and
        each attempt is attributed to the endpoint kube-proxy chose. For node and host sources the
        client address the pod saw is checked against the model too. Zero probes is a UsageError.
        `extra_policies`: judge as if these were applied too (a what-if being enforced)."""
        from netsim.policy.verify import Cell, VerifyReport, model_from_store
        from netsim.probe.engine import Probe, run_probes
        model = model_from_store(self.store, extra_policies)
        by_key = {p.key: p for p in model.pods}
        sources, dests = self._policy_pairs(frm, to, outside=True)
        report = VerifyReport()
        pod_like = [s for s in sources if not s.label.startswith("host/")]
        hosts = [s for s in sources if s.label.startswith("host/")]
        probes, meta = [], []
        for d in dests:
            for port, proto in _port_pairs(d.pod, ports, protocols):
                ip, dport = (d.ip or "", port)
                if via == "service":
                    ip, dport = self._service_for(d.pod, port, proto)
                for s in pod_like:
                    probes.append(Probe(s.netns or "", s.label, ip, dport, proto, timeout, to=d.label))
                    meta.append((s, d.label, port, proto))
        host_plan = self._host_probes(model, hosts, dests, ports, protocols, timeout, report.notes)
        if not probes and not host_plan:
            raise UsageError("verify: nothing to probe: " + (
                "no declared ports on the destinations (say --ports)" if pod_like else
                "no NodePort/LoadBalancer Service exposes the destinations to external hosts (pod IPs are not "
                "routed outside the cluster)"))
        addrs = self._node_addresses() if any(s.pod is None for s in sources) else {}
        self._forget_datagram_flows({p.protocol for p in probes} | {h[0].protocol for h in host_plan})
        results = run_probes(self.kernel, probes + [h[0] for h in host_plan]) if probes or host_plan else []
        for (s, dst, port, proto), r in zip(meta, results):
            client = None
            if s.pod is not None:
                src_ep = by_key[s.label]
            else:
                from netsim.policy.model import NodeEndpoint
                from netsim.policy.paths import from_node
                node = s.label[5:]
                arrival = from_node(self.spec.network.plugin, self.spec.network.backend, addrs[node],
                                    by_key[dst].node)
                src_ep, client = NodeEndpoint(node, arrival.judged), arrival.seen
            v = model.verdict(src_ep, by_key[dst], port, proto, via_service=via == "service")
            observed = None if r.outcome == "error" else r.outcome in ("connected", "refused")
            report.cells.append(Cell(s.label, dst, port, proto, v.allowed, observed, r.outcome, v, client,
                                     r.client_ip if client else None, src_ep))
        report.cells.extend(c for c in self._host_cells(model, host_plan, results[len(probes):], addrs, report.notes)
                            if c.destination in {d.label for d in dests})
        if not self.enforces_policy and model.policies:
            report.notes.append(f"plugin {self.spec.network.plugin} does not enforce NetworkPolicy (as with "
                                "real flannel): expect the kernel to allow what the policies deny")
        from netsim.controlplane import whatif
        others = [w for w in self.store.list(whatif.KIND, whatif.NAMESPACE)
                  if ((w.get("spec") or {}).get("owner") or {}).get("pid") != whatif.this_process().pid]
        if others:
            report.notes.append(f"{len(others)} what-if(s) of other commands (verify --diff, pids "
                                f"{', '.join(str(w['spec']['owner'].get('pid')) for w in others)}) were enforced "
                                "meanwhile: cells they change may disagree")
        return report

    def _node_addresses(self):
        """Each node's eth0 / tunnel / bridge addresses as the kernel has them (the inputs of
        netsim.policy.paths)."""
        from netsim.policy.paths import NodeAddresses
        out = {}
        for n in self.state.nodes:
            devices: dict[str, str] = {}
            for line in self.kernel.run(n["netns"], ["ip", "-o", "-4", "addr", "show"]).stdout.splitlines():
                f = line.split()
                if len(f) >= 4 and f[2] == "inet":
                    devices.setdefault(f[1], f[3].split("/")[0])
            out[n["name"]] = NodeAddresses.from_devices(n["name"], devices)
        return out

    def _host_probes(self, model: Any, hosts: Sequence[ProbeEndpoint], dests: Sequence[ProbeEndpoint],
                     ports: Sequence[int] | None, protocols: Sequence[str] | None, timeout: float,
                     notes: list[str]) -> list[tuple]:
        """External hosts reach pods through NodePorts only (pod IPs are not routed outside the cluster):
        for every NodePort/LoadBalancer Service port in front of a destination, probe it on every node,
        enough times (3 per endpoint) that each endpoint is likely hit from each node. Returns
        (probe, host, node, service, service port) per attempt."""
        from netsim.probe.engine import Probe

        wanted = {d.label: d for d in dests}
        plan, seen = [], set()
        for svc in self.store.typed_list("Service") if hosts else []:  # the parse cache's typed Services
            if svc.type not in ("NodePort", "LoadBalancer") or not svc.selector:
                continue
            for sp in svc.ports:
                proto = sp.protocol
                if not sp.node_port or (protocols and proto not in protocols):
                    continue
                backends = _backends(model, svc, sp)
                eps = [b for b, t in backends if b.key in wanted and (not ports or t in ports)]
                if not eps:
                    continue
                seen.update(b.key for b in eps)
                local_only = (svc.external_traffic_policy or "Cluster") == "Local"
                for h in hosts:
                    for n in self.state.nodes:
                        # Local: a node without endpoints of its own drops (kube-proxy "has no local
                        # endpoints"), which says nothing about policy: only nodes with endpoints are tried.
                        reach = [b for b, _ in backends if b.node == n["name"]] if local_only else backends
                        for _ in range(3 * len(reach)):
                            plan.append((Probe(h.netns or "", h.label, n["ip"], sp.node_port, proto,
                                               timeout, to=f"svc/{_svc_key(svc)}"), h, n, svc, sp))
        if hosts and set(wanted) - seen:
            notes.append(f"{len(set(wanted) - seen)} destination(s) have no NodePort/LoadBalancer Service: "
                         "external hosts cannot reach them (pod IPs are not routed outside the cluster)")
        return plan

    def _host_cells(self, model: Any, plan: Sequence[tuple], results: Sequence[ProbeResult], addrs: Mapping,
                    notes: list[str]) -> list[Any]:
        """One cell per (host, ingress node, endpoint) that the attempts reached: the endpoint is the pod
        that answered, else the DNAT destination in the ingress node's conntrack, else (the packet was
        dropped on the ingress node before conntrack confirmed it) the node's only local endpoint."""
        from netsim.policy.model import ExternalEndpoint, NodeEndpoint
        from netsim.policy.paths import from_host_via_node
        from netsim.policy.verify import Cell
        from netsim.trace.observe.conntrack import lookup
        by_ip = {p.ip: p for p in model.pods}
        by_key = {p.key: p for p in model.pods}
        ct: dict[tuple[str, str, str], list] = {}
        cells: dict[tuple, Cell] = {}
        unattributed = 0
        for (probe, h, n, svc, sp), r in zip(plan, results):
            pod, client = by_key.get(r.served_by or ""), r.client_ip
            if pod is None and r.outcome != "error":
                k = (n["netns"], probe.protocol.lower(), h.ip or "")
                if k not in ct:
                    ct[k] = lookup(self.kernel, k[0], proto=k[1], src=k[2])
                hit = [e for e in ct[k] if e.original.sport == r.source_port and e.original.dport == probe.port]
                pod = by_ip.get(hit[0].translated_dst[0]) if len(hit) == 1 else None
                client = hit[0].translated_src[0] if len(hit) == 1 else None  # the masquerade it did
                if pod is None:
                    local = [b for b, _ in _backends(model, svc, sp) if b.node == n["name"]]
                    pod = local[0] if len(local) == 1 else None
            if pod is None or r.outcome == "error":
                unattributed += r.outcome != "error"
                continue
            tport = dict((b.key, t) for b, t in _backends(model, svc, sp)).get(pod.key)
            if tport is None:
                continue
            local_policy = (svc.external_traffic_policy or "Cluster") == "Local"
            arrival = from_host_via_node(self.spec.network.plugin, self.spec.network.backend, h.ip or "",
                                         addrs[n["name"]], pod.node, external_policy_local=local_policy)
            judged = NodeEndpoint(n["name"], arrival.judged) if arrival.judged != h.ip \
                else ExternalEndpoint(arrival.judged, h.label[5:])
            v = model.verdict(judged, pod, tport, probe.protocol)
            observed = r.outcome in ("connected", "refused")
            key = (h.label, n["name"], pod.key, tport, probe.protocol)
            cell = cells.get(key)
            if cell is None or (observed and not cell.observed):
                cells[key] = Cell(f"{h.label}@{n['name']}", pod.key, tport, probe.protocol, v.allowed, observed,
                                  r.outcome, v, arrival.seen, client, judged)
        if unattributed:
            notes.append(f"{unattributed} NodePort attempt(s) from external hosts could not be attributed to "
                         "an endpoint (dropped on a node with several local endpoints)")
        return list(cells.values())

    def _forget_datagram_flows(self, protocols: Iterable[str]) -> None:
        """Drop the nodes' UDP/SCTP conntrack entries before probing those protocols. The probe engine picks
        random source ports, and a datagram whose 5-tuple matches a flow left by an earlier probe (UDP
        entries live 30-120 s) is ESTABLISHED to conntrack, so calico's endpoint chains accept it before any
        policy is consulted: after a policy change, verify would report the old verdict. TCP needs nothing:
        connect() never reuses a tuple that is still in use, and a SYN on a closed entry starts a new flow."""
        for proto in sorted({p.upper() for p in protocols} & {"UDP", "SCTP"}):
            for node in self.state.nodes:
                self.kernel.run(node["netns"], ["conntrack", "-D", "-p", proto.lower()], check=False)

    def _node_source_ip(self, node: str, dst_ip: str) -> str | None:
        """The address a node's packet to `dst_ip` leaves with (the route's preferred source): a pod on
        another node is reached over the overlay, from the tunnel device's address, not the node IP."""
        rec = self.state.node(node)
        if rec is None:
            return None
        out = self.kernel.run(rec["netns"], ["ip", "-o", "route", "get", dst_ip], check=False).stdout.split()
        return out[out.index("src") + 1] if "src" in out[:-1] else None

    def verify_diff(self, new_objects: Sequence[Any], *, frm: str | None = None, to: str | None = None,
                    ports: Sequence[int] | None = None, protocols: Sequence[str] | None = None,
                    via: str = "pod", timeout: float = 0.5) -> dict[str, Any]:
        """What applying `new_objects` (NetworkPolicies) would change: from the model, confirmed on the
        kernel by having the daemon enforce them as a what-if (never as real objects), then rolled back;
        if this process dies meanwhile, the daemon rolls the what-if back within a pass."""
        self.require_daemon()  # the what-if is programmed by felix in the daemon
        from netsim.policy.verify import model_from_store
        policies = [x for x in new_objects if getattr(x, "kind", None) == "NetworkPolicy"]
        if len(policies) != len(new_objects):
            raise UsageError("--diff takes NetworkPolicy manifests only")
        before = model_from_store(self.store)
        by_key = {p.key: p for p in before.pods}
        self._policy_pairs(frm, to, outside=True)  # bad selections fail before anything is enforced
        # The daemon owns the what-if (netsim.controlplane.whatif): felix enforces it on top of the live
        # policies, and the daemon deletes it if this process dies or stops renewing the lease. The
        # NetworkPolicy objects themselves are never written.
        import time

        from netsim.controlplane import whatif
        obj = self.store.create(whatif.make([p.to_dict() for p in policies], whatif.this_process(), time.time(),
                                            lease=CONVERGE_TIMEOUT + whatif.DEFAULT_LEASE,
                                            description="netsim verify --diff"))
        name = obj["metadata"]["name"]
        try:
            self.wait_converged(CONVERGE_TIMEOUT)
            cur = self.store.get(whatif.KIND, whatif.NAMESPACE, name)
            if cur is None:
                raise daemonctl.DaemonError("the what-if was rolled back before it could be probed (lease expired)")
            self.store.update(whatif.renew(cur, time.time(), whatif.DEFAULT_LEASE + 3 * timeout))
            report = self.verify(frm, to, ports, protocols, via=via, timeout=timeout, extra_policies=policies)
        finally:
            try:
                self.store.delete(whatif.KIND, whatif.NAMESPACE, name)
            except StoreError:
                pass  # the daemon rolled it back already
            self.wait_converged()
            rolled_back = self.store.get(whatif.KIND, whatif.NAMESPACE, name) is None
        changes = []
        for c in report.cells:
            b = before.verdict(c.judged, by_key[c.destination], c.port, c.protocol,
                               via_service=via == "service").allowed
            if b != c.expected:
                changes.append({"from": c.source, "to": c.destination, "port": c.port, "protocol": c.protocol,
                                "before": b, "after": c.expected, "observed": c.observed})
        confirmed = all(ch["observed"] == ch["after"] for ch in changes) if self.enforces_policy else False
        return {"pairs": len(report.cells), "changes": changes, "confirmed": confirmed, "rolledBack": rolled_back,
                "enforced": self.enforces_policy, "disagreements": len(report.disagreements)}

    def explain(self, src: str, dst: str, port: int, protocol: str = "TCP", *, probe: bool = True) -> str:
        """The model's verdict with every policy and rule that contributed, and what the kernel does."""
        from netsim.policy.model import ExternalEndpoint, NodeEndpoint, PodInfo
        from netsim.policy.verify import model_from_store, service_backends
        model = model_from_store(self.store)
        by_key = {p.key: p for p in model.pods}

        def endpoint(label: str):
            if label in by_key:
                return by_key[label]
            ep = self.sources(label)[0] if label.startswith(("node/", "host/")) else None
            if ep is not None and label.startswith("node/"):
                return NodeEndpoint(label[5:], ep.ip or "")
            if ep is not None:
                return ExternalEndpoint(ep.ip or "", label[5:])
            return ExternalEndpoint(label)

        lines = []
        source = endpoint(src)
        if isinstance(source, ExternalEndpoint) and src.startswith("host/"):
            via_nodeport = self._explain_from_host(model, src, source, dst, port, protocol, probe)
            if via_nodeport is not None:
                return via_nodeport
        targets: list[tuple[str, str, int]] = []
        if dst.startswith("svc/"):
            _, ns, name = dst.split("/", 2)
            svc = self.store.decode(self.service(ns, name))  # the parse cache's typed Service
            if not any(p.port == port and p.protocol == protocol for p in svc.ports):
                raise UsageError(f"Service {ns}/{name} has no port {port}/{protocol}")
            backends = service_backends(model, svc, port, protocol)
            lines.append(f"{dst}:{port} -> {len(backends)} endpoint(s); policy is judged after DNAT, per endpoint")
            targets.extend((b.key, b.ip, bport) for b, bport in backends)
        else:
            d = endpoint(dst)
            targets.append((dst, getattr(d, "ip", dst), port))
        for label, ip, tport in targets:
            src_ep = source
            dst_ep = endpoint(label)
            if isinstance(source, NodeEndpoint) and isinstance(dst_ep, PodInfo) and dst_ep.node != source.name:
                src_ep = NodeEndpoint(source.name, self._node_source_ip(source.name, ip) or source.ip)
            v = model.verdict(src_ep, dst_ep, tport, protocol, via_service=dst.startswith("svc/"))
            lines.append(v.explain())
        if not self.enforces_policy:
            lines.append(f"note: plugin {self.spec.network.plugin} does not enforce NetworkPolicy; the kernel "
                         "allows everything")
        if probe and src.count("/") and not src.endswith("*"):
            try:
                self._forget_datagram_flows([protocol])
                results = self.probe(src, dst, [port], [protocol], timeout=1.0)
                for r in results:
                    lines.append(f"kernel: {r.outcome}" + (f" (served by {r.served_by})" if r.served_by else ""))
            except UsageError as exc:
                lines.append(f"kernel: not probed ({exc})")
        return "\n".join(lines)

    def _explain_from_host(self, model: Any, src: str, source: Any, dst: str, port: int, protocol: str,
                           probe: bool) -> str | None:
        """An external host reaches pods through a NodePort: `dst` a Service (its NodePort on every node)
        or NODEIP:NODEPORT. Each (ingress node, endpoint) is judged with the address the packet carries
        there (netsim.policy.paths.from_host_via_node). None when `dst` is neither."""
        from netsim.policy.model import ExternalEndpoint, NodeEndpoint
        from netsim.policy.paths import from_host_via_node
        nodes = self.state.nodes
        found = None
        for svc in self.store.typed_list("Service"):  # the parse cache's typed Services
            for sp in svc.ports:
                if sp.protocol != protocol:
                    continue
                if dst == f"svc/{_svc_key(svc)}" and sp.port == port:
                    found = (svc, sp, nodes)
                elif sp.node_port == port and any(n["ip"] == dst for n in nodes):
                    found = (svc, sp, [n for n in nodes if n["ip"] == dst])
        if found is None:
            return None
        svc, sp, ingress = found
        if not sp.node_port:
            return (f"{src} cannot reach {dst}:{port}: a ClusterIP is not routed outside the cluster and "
                    f"Service {_svc_key(svc)} has no NodePort")
        local = (svc.external_traffic_policy or "Cluster") == "Local"
        backends = _backends(model, svc, sp)
        addrs = self._node_addresses()
        lines = [f"{dst}:{port} is reached from outside as NodePort {sp.node_port} of svc/{_svc_key(svc)} "
                 f"(externalTrafficPolicy {'Local' if local else 'Cluster'}) -> {len(backends)} endpoint(s); "
                 "policy is judged after DNAT, per ingress node and endpoint"]
        for n in ingress:
            for b, tport in backends:
                if local and b.node != n["name"]:
                    continue
                a = from_host_via_node(self.spec.network.plugin, self.spec.network.backend, source.ip,
                                       addrs[n["name"]], b.node, external_policy_local=local)
                judged = ExternalEndpoint(a.judged, source.name) if a.judged == source.ip \
                    else NodeEndpoint(n["name"], a.judged)
                lines.append(f"via {n['name']} ({n['ip']}:{sp.node_port}): judged from {a.judged}, the pod "
                             f"sees {a.seen}")
                lines.append(model.verdict(judged, b, tport, protocol).explain())
        if not self.enforces_policy:
            lines.append(f"note: plugin {self.spec.network.plugin} does not enforce NetworkPolicy; the kernel "
                         "allows everything")
        if probe:
            self._forget_datagram_flows([protocol])
            for n in ingress:
                r = self.probe(src, f"{n['ip']}:{sp['nodePort']}", None, [protocol], timeout=1.0)[0]
                lines.append(f"kernel via {n['name']}: {r.outcome}"
                             + (f" (served by {r.served_by}, client {r.client_ip})" if r.served_by else ""))
        return "\n".join(lines)

    # -- what scenarios do (netsim.scenario.runner acts on a cluster only through these) -------------
    def rollout(self, action: str, name: str, namespace: str = "default", *, image: str | None = None,
                container: str | None = None, env: Sequence[tuple[str, str]] = (),
                to_revision: int | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """A Deployment rollout as `kubectl rollout` drives it: `update` (a new image/env, then wait),
        `undo` (to `to_revision`, 0 the previous one, then wait) or `status` (wait). Returns
        `{"revision", "complete", "message"}`; a rollout that does not finish in `timeout` raises
        DaemonError."""
        if action == "update":
            self.set_image(name, image or "", namespace, container, env=dict(env))
            msg = self.wait_rollout(name, namespace, timeout)
        elif action == "undo":
            msg = self.rollout_undo(name, namespace, to_revision or 0)
            self.wait_rollout(name, namespace, timeout)
        else:
            msg = self.wait_rollout(name, namespace, timeout)
        from netsim.controlplane import rollout as ro
        rev = ro.revision(self.store.get("Deployment", namespace, name) or {"metadata": {}})
        return {"revision": rev, "complete": True, "message": msg}

    def _typed_pod(self, pod: dict[str, Any]) -> Any:
        """The typed Pod of a stored pod: the store's parse cache's, shared with the agents and controllers
        (one that does not parse read leniently: netsim.agents.podread)."""
        from netsim.agents.podread import typed_pod
        return typed_pod(self.store.decode, pod)

    def kill_pods(self, namespace: str, *, name: str | None = None,
                  selector: LabelSelector | None = None) -> list[str]:
        """Kill pod `name`, or every pod of `namespace` matching `selector` (all with neither), that has a
        sandbox, as crashes (`kill_pod`); then wait until each is healed. Returns their `ns/name`."""
        pods = [p for p in self.pods(namespace) if self._typed_pod(p).status.pod_ip]
        if name is not None:
            pods = [p for p in pods if o.name(p) == name]
        elif selector is not None:
            pods = [p for p in pods if selector.matches(self._typed_pod(p).meta.labels)]
        for p in pods:
            self.kill_pod(o.name(p), namespace, wait=False)
        for p in pods:  # then wait for every one of them to be healed
            self.wait_healed(o.name(p), namespace)
        return [o.key(p) for p in pods]

    def wait_for(self, kind: str, name: str, namespace: str | None = "default", condition: str = "Ready",
                 timeout: float = 60.0) -> bool:
        """Wait until the object holds `condition` (netsim.controlplane.conditions: Ready, Available,
        Complete, RolledOut, Deleted, or any status condition); False on timeout."""
        import time

        from netsim.controlplane import conditions
        ns = namespace or "default" if kind_namespaced(kind, self.custom_kinds()) else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if conditions.holds(self.store.get(kind, ns, name), condition):
                return True
            time.sleep(0.05)
        return False

    def dns_lookup(self, src: str, name: str, qtype: str = "A", server: str | None = None,
                   timeout: float = 2.0) -> dict[str, Any]:
        """Resolve `name` from pod `src` as its resolver would (search path, ndots:5), asking the cluster
        DNS (or `server`) from inside the pod's namespace (netsim.dns.lookup)."""
        from netsim.dns.lookup import lookup
        ep = self.sources(src)[0]
        ns = (self._typed_pod(ep.pod).meta.namespace or "default") if ep.pod else "default"
        server = server or str(ipaddress.ip_network(self.spec.network.service_cidr).network_address + 10)
        return lookup(self.kernel, ep.netns or "", ns, self.spec.dns_domain, server, name, qtype, timeout)

    def expected_verdicts(self, sources: Sequence[str], targets: Sequence[str], ports: Sequence[int],
                          protocols: Sequence[str]) -> list[dict[str, Any]]:
        """What the NetworkPolicy model predicts for every concrete pod pair the selectors name, port and
        protocol: `Verdict.to_dict()` (`from`, `to`, `port`, `protocol`, `allowed`, ...)."""
        from netsim.policy.verify import model_from_store
        model = model_from_store(self.store)
        by_key = {p.key: p for p in model.pods}
        out = []
        for s in sources:
            for t in targets:
                for src in self.sources(s):
                    for dst in self.sources(t):
                        if src.label not in by_key or dst.label not in by_key:
                            continue
                        for port in ports:
                            for proto in protocols or ["TCP"]:
                                out.append(model.verdict(by_key[src.label], by_key[dst.label], port, proto).to_dict())
        return out

    def trace_summary(self, src: str, dst: str, port: int | None = None, protocol: str = "TCP") -> dict[str, Any]:
        """One packet's path, simulated and observed (netsim.trace.api), as a scenario asserts on it:
        `{"verdict", "policy", "policies", "hops", "simulated", "agree", "disagreements", "endpoint"}`."""
        from netsim.trace.api import trace_for_scenario
        return trace_for_scenario(self, src, dst, port, protocol)

    def trace(self, src: str, dst: str, port: int | None = None, protocol: str = "TCP", *,
              sport: int | None = None, pcap: str | None = None, observe: bool = True) -> Any:
        """One packet from `src` to `dst`, simulated through the nodes' real rules and (with `observe`)
        sent and watched on the kernel: the TraceReport `netsim trace` prints (netsim.trace.api)."""
        from netsim.trace.api import trace
        return trace(self, src, dst, port, protocol, sport=sport, pcap=pcap, observe=observe)

    def draw(self, path: str, *, system: bool = True, between: Sequence[str] | None = None) -> dict[str, Any]:
        """Write the cluster's topology to `path` (.png, .svg or .dot; netsim.draw), the path the routing
        facts predict from `between[0]` to `between[1]` highlighted. Returns what was drawn: `nodes`,
        `pods`, `services` (counts) and `path` (the highlighted vertices)."""
        from netsim import draw as drawing
        from netsim import topology
        g = topology.topology_of(self)
        highlight: list[str] = []
        if between:
            try:
                highlight = topology.path_between(g, *between)
            except topology.PathError as exc:
                raise UsageError(f"no path from {between[0]} to {between[1]}: {exc}") from None
        if not system:
            g = topology.without_namespaces(g, {"kube-system"}, keep=highlight)
        drawing.draw(g, path, highlight=highlight)
        return {"nodes": len(topology.vertices(g, "node")), "pods": len(topology.vertices(g, "pod")),
                "services": len(topology.vertices(g, "service")), "path": highlight}

    def iptables_save(self, where: str, tables: Sequence[str] = ("nat", "filter")) -> str:
        """`iptables-save` of those tables in a node's (`node/N`), host's or pod's namespace."""
        ep = self.sources(where)[0]
        return "".join(self.kernel.run(ep.netns or "", ["iptables-save", "-t", t]).stdout for t in tables)

    def metrics(self) -> Any:
        """The pod usage the daemon's metrics-server last sampled (netsim.model.metrics.MetricsView; empty
        before the first sample, and for a cluster in process)."""
        import json

        from netsim.daemonfiles import metrics_path
        from netsim.model.metrics import MetricsView
        if self.in_process:
            return MetricsView()
        try:
            with open(metrics_path(self.name)) as f:
                return MetricsView.from_dict(json.load(f))
        except (OSError, ValueError, KeyError):
            return MetricsView()

    def kubeconfig(self) -> dict[str, Any]:
        """The cluster's kubeconfig (context, cluster and user `netsim-<cluster>`, certificates inline)."""
        from netsim.apiserver import endpoint
        ep = None if self.in_process else endpoint.load(self.name)
        if ep is None:
            raise UsageError(f"cluster {self.name} has no API endpoint (it was made without one); recreate it "
                             f"with `netsim down --name {self.name}` and `netsim up`")
        return ep.kubeconfig()

    # -- commands ------------------------------------------------------------------------------------
    def exec(self, where: str, argv: Sequence[str], *, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run a command in a pod's (`ns/pod`), node's (`node/N`) or host's (`host/H`) namespace, with the
        pod's /etc/netns files (resolv.conf) bound as `ip netns exec` does."""
        ep = self.sources(where)
        if len(ep) != 1:
            raise UsageError(f"{where} must name exactly one pod, node or host")
        import subprocess
        return subprocess.run(["ip", "netns", "exec", ep[0].netns or "", *argv], capture_output=True, text=True,
                              timeout=timeout)


def _linux_kernel() -> Kernel:
    """The real kernel, imported when first needed (commands that never touch it do not start pyroute2)."""
    from netsim.kernel.linux import LinuxKernel
    return LinuxKernel()


class _HandedOver:
    """A manifest copy the store may keep as it is (`netsim.store.as_dict` takes an object's `to_dict()` as
    fresh): the copy is made before the write transaction instead of inside it."""

    __slots__ = ("obj",)

    def __init__(self, obj: dict[str, Any]):
        self.obj = obj

    def to_dict(self) -> dict[str, Any]:
        return self.obj


def _handed_over(docs: list[dict[str, Any]]) -> list[Any]:
    return [_HandedOver(copy_manifest(d)) for d in docs]


def _admission_stale(tx: Store, rv: int) -> bool:
    """Were Services or Namespaces (what admission reads) written after `rv`?"""
    try:
        return bool(tx.changes_of(("Service", "Namespace"), rv))
    except Compacted:
        return True


def _ident(d: dict[str, Any]) -> tuple[str, str | None, str]:
    return identity(d)


def _key_text(d: dict[str, Any]) -> str:
    _, ns, name = identity(d)
    return f"{ns}/{name}" if ns else name


def _port_pairs(pod: dict[str, Any] | None, ports: Sequence[int] | None,
                protocols: Sequence[str] | None) -> list[tuple[int, str]]:
    """(port, protocol) to verify on a destination: the asked ports, else its declared ones."""
    if ports:
        return [(port, proto) for port in ports for proto in (protocols or ["TCP"])]
    return [(port, proto) for port, proto in _declared_ports(pod or {}) if not protocols or proto in protocols]


def _svc_key(svc: Any) -> str:
    """`ns/name` of a typed Service (objects.key's reading of a stored one)."""
    return f"{svc.meta.namespace or 'default'}/{svc.meta.name}"


def _backends(model: Any, svc: Any, sp: Any) -> list[tuple[Any, int]]:
    from netsim.policy.verify import service_backends
    return service_backends(model, svc, sp.port, sp.protocol)


def _declared_ports(pod: dict[str, Any]) -> list[tuple[int, str]]:
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            out.append((int(p["containerPort"]), p.get("protocol", "TCP")))
    return sorted(set(out))


def results_json(results: Iterable[ProbeResult]) -> list[dict[str, Any]]:
    return [r.to_json() for r in results]
