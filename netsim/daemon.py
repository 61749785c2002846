"""The per-cluster daemon: the loop and the wiring that runs the control plane and every agent in one process.

The agents themselves live in their own modules (netsim/agents/: the kubelet's pod logic and per-pass pod
work, kube-proxy, felix, DNS, the flannel-like backend, the LoadBalancer speaker); each is constructed here
with its identity, the kernel and the store, and driven once per pass.

`netsim up` starts it (`python -m netsim.daemon CLUSTER`), `netsim down` stops it. It reconciles whenever
the store changes (CLI commands write the store) and at least once a second (heartbeats, grace periods,
CronJob schedules, readiness):

1. control plane: every controller and the scheduler (netsim.controlplane.loop.reconcile_once);
2. kubelets: sandboxes and CNI for pods bound to live nodes (kubelet_step), sandboxes that vanished
   (`netsim kill pod`) torn down and made again, container processes restarted per restartPolicy;
3. data plane: kube-proxy rules on every live node when Services/EndpointSlices changed, felix policy
   state when pods/namespaces/NetworkPolicies changed (calico and canal);
4. a convergence marker (`converged.json`) that CLI commands wait on, and a health record
   (`health.json`): the state of every component (the DNS and workload server threads, the reconcile
   loop, each node's kube-proxy and felix agent) that `netsim status` reports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from netsim import apiserver, fabric, memtrace, naming, state, storefactory
from netsim.agents.dns import DnsAgent
from netsim.agents.felix import Felix
from netsim.agents.flannel import FlannelBackend
from netsim.agents.kube_proxy import KubeProxy
from netsim.agents.kubelet import ClusterKubelet
from netsim.agents.metrics import MetricsServer
from netsim.agents.pod_sync import PodSync
from netsim.agents.proxy_watch import ProxyWatch
from netsim.agents.speaker import Speaker
from netsim.controlplane import events as ev
from netsim.controlplane import objects as o
from netsim.controlplane import whatif
from netsim.controlplane.admission import admit
from netsim.controlplane.hpa import AutoscalingConfig
from netsim.controlplane.leases import LeaseRenewer, renew_interval, status_interval
from netsim.controlplane.loop import (
    RealClock,
    failed_pods,
    kubelet_step,
    pending_pods,
    reconcile_once,
)
from netsim.controlplane.nodes import (
    HostFacts,
    node_object,
    node_view,
    refresh_default_labels,
    refreshed_status,
)
from netsim.controlplane.state import Config
from netsim.daemonfiles import (  # noqa: F401 - the daemon's files, also read by name from here
    CONVERGED_FILE,
    FAILED_ANNOTATION,
    HEALTH_FILE,
    agent_metrics_path,
    agent_metrics_paths,
    converged_path,
    health_path,
    metrics_path,
)
from netsim.dns.server import DnsServer, SnapshotHolder
from netsim.hostagent import Role, ready_elsewhere, start_elector, write_first_marker
from netsim.leader import Elector
from netsim.model.cluster import ClusterSpec, parse_cluster
from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.node.kubelet import Kubelet
from netsim.node.network import NodeRec, PodNetwork
from netsim.node.pod_setup import PodSetup
from netsim.node.watch_delay import WatchDelays
from netsim.store import COMPACTION_INTERVAL, Compacted, Compactor, Store, StoreError, rfc3339
from netsim.storewatch import ChangeWaiter
from netsim.workload.shards import WorkloadShards

log = logging.getLogger("netsim.daemon")
STORE_FILE = storefactory.STORE_FILE
HEALTH_INTERVAL = 1.0  # the health record is rewritten at least this often, and at once when it changes
DATAPLANE_WORKERS = 4  # node agents (kube-proxy, felix) syncing at once
store_path = storefactory.store_path
open_store = storefactory.open_store


def bootstrap_objects(spec: ClusterSpec) -> list[dict[str, Any]]:
    """What kubeadm leaves in a new cluster that matters to the network: namespaces and cluster DNS."""
    dns_labels = {"k8s-app": "kube-dns"}
    ports = [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
             {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
             {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}, "spec": {}}
        for n in ("default", "kube-system", "kube-public")
    ] + [
        # The API server's own Service takes the first address (10.96.0.1), as in every cluster, and its
        # EndpointSlice the first node's IP:6443, where the daemon serves the API inside that node's netns.
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kubernetes", "namespace": "default",
                      "labels": {"component": "apiserver", "provider": "kubernetes"}},
         "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}},
        *([kubernetes_endpointslice(spec.node_ip(0))] if spec.nodes else []),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {**dns_labels,
                                                                                 "kubernetes.io/name": "CoreDNS"}},
         "spec": {"selector": dns_labels, "ports": [
             {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
             {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "coredns", "namespace": "kube-system", "labels": dns_labels},
         "spec": {"replicas": 2, "selector": {"matchLabels": dns_labels},
                  "template": {"metadata": {"labels": dns_labels},
                               "spec": {"containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns",
                                                        "ports": ports}],
                                        "tolerations": [{"key": "node-role.kubernetes.io/control-plane",
                                                         "effect": "NoSchedule"}]}}}},
    ]


def write_json(path: str, data: Any) -> None:
    """Replace a record atomically (readers never see half of it)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def kubernetes_endpointslice(ip: str) -> dict[str, Any]:
    """The `kubernetes` Service's EndpointSlice as kube-apiserver's endpoint reconciler writes it
    (pkg/controlplane/reconcilers/endpointsadapter.go endpointSliceFromEndpoints): named after the Service,
    labelled only kubernetes.io/service-name (no managed-by: the EndpointSlice controller manages only
    selector Services' slices and leaves it alone), IPv4, port `https` 6443, one ready endpoint: the
    advertise address (here the first node's IP)."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4", "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}


def normalise(docs: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Parse manifest dicts through the model (validation + Kubernetes defaulting) back to dicts."""
    return [parse_object(d, Source(source, i)).to_dict() for i, d in enumerate(docs)]


class Daemon:
    """`role` (netsim.hostagent.Role): which part of the cluster this process runs. The default, the
    cluster's daemon, is a control-plane candidate and runs the node agents of every node when the spec
    names no hosts; a host agent (`netsim agent`) runs only its host's node agents; a control-plane process
    (`netsim controlplane`) only competes for the leadership and runs the controllers while it leads."""

    def __init__(self, cluster: str, *, resync: float = 1.0, role: Role | None = None):
        st = state.load(cluster)
        if st is None:
            raise SystemExit(f"no cluster {cluster}")
        self.st = st
        self.spec = parse_cluster(st.spec, Source(state.state_file(cluster)))
        self.role = role or Role.daemon(self.spec)
        from netsim.kernel.linux import LinuxKernel
        self.kernel = LinuxKernel()
        self.store: Store = open_store(cluster)
        self.clock = RealClock()
        self.rng = random.Random()
        self.resync = resync
        timing = self.spec.timing
        self.config = Config(node_monitor_grace_seconds=float(os.environ.get("NETSIM_NODE_GRACE",
                                                                             timing.node_monitor_grace_period)),
                             pod_eviction_seconds=float(os.environ.get("NETSIM_POD_EVICTION",
                                                                       timing.pod_eviction_timeout)),
                             autoscaling=AutoscalingConfig(**self.spec.autoscaling.as_kwargs()),
                             endpointslice_batch_period=timing.endpointslice_batch_period)
        # What controllers remember between rounds (the HPA's recommendations and scale events).
        self.controller_memory: dict[str, Any] = {}
        self.network = PodNetwork(self.kernel, self.spec)
        # flanneld on every node (flannel, canal), fed by the Node objects' change log (netsim/agents/flannel.py).
        # Every node (for the routes to peers) and the nodes whose agents run in this process.
        self.all_nodes = {n["name"]: NodeRec(n["name"], n["ip"], n["podCIDR"]) for n in st.nodes}
        self.nodes = {n: rec for n, rec in self.all_nodes.items() if n in self.role.nodes}
        self.flannel = FlannelBackend(self.spec, self.kernel, self.store, list(self.nodes)) \
            if self.network.plugin_name in ("flannel", "canal") else None
        self.kubelets = {name: Kubelet(self.kernel, self.network, rec, cni_mode=self.spec.network.cni_mode)
                         for name, rec in self.nodes.items()}
        # The pods' ports: this process's own listeners, and shard processes past its descriptor limit.
        self.workload = WorkloadShards(self.kernel, cluster)
        self.dns_snapshot = SnapshotHolder()
        self.dns = DnsServer(self.kernel, self.dns_snapshot, self.spec.dns_domain)
        self.dns_agent = DnsAgent(self.store, self.dns_snapshot)  # the records, from the change log
        self.pod_setup = PodSetup(cluster, self.spec.dns_domain, self.store.list, self.store.get)
        self.kubelet = ClusterKubelet(self.kernel, self.kubelets, self.workload, self.dns, self.spec,
                                      lambda: self.store.typed_list("Service"), self.pod_setup,
                                      lambda ref, reason, msg, actor: self._event(ref, reason, msg, actor=actor),
                                      decode=self.store.decode)
        # Restarts, container statuses, healing, adoption, Service ports and volumes (netsim/agents/pod_sync.py).
        self.pods = PodSync(self.spec, self.nodes, self.kernel, self.store, self.kubelet, self.clock,
                            lambda ref, reason, msg, actor: self._event(ref, reason, msg, actor=actor))
        # Pod usage (metrics-server's role) for the HPA controller and `netsim top` (netsim/agents/metrics.py).
        # On several hosts each host agent samples its own pods into a file of its own, and the control
        # plane joins them (metrics-server scraping every node's kubelet) for the HPA and `netsim top`.
        self.metrics = MetricsServer(self.store, self.kubelet, self.workload.request_counts,
                                     self.spec.autoscaling.metric_resolution,
                                     agent_metrics_path(cluster, self.role.host) if self.role.name == "agent"
                                     else metrics_path(cluster),
                                     pods=self.pods.source.current,
                                     scraped=(lambda: agent_metrics_paths(cluster))
                                     if self.role.name != "agent" and len(self.nodes) < len(self.all_nodes) else None)
        # Node agents sync side by side: each sync is mostly an iptables-restore / ipset process of its own.
        self._dataplane_pool = ThreadPoolExecutor(max_workers=DATAPLANE_WORKERS, thread_name_prefix="netsim-dataplane")
        # kube-proxy on every node: change trackers over the store's change log, pacing, syncs beside the
        # passes (netsim/agents/kube_proxy.py), and its own loop woken by the store's change notification, so
        # a Service or slice write reaches the rules without waiting for the running pass
        # (netsim/agents/proxy_watch.py). It reads through its own store connection: a pass's transaction
        # holds the daemon's.
        proxy_store = open_store(cluster)
        # Each node's kube-proxy knows its node through the one node view of the Node its kubelet registers.
        host = HostFacts.of_this_host()
        views = {nspec.name: node_view(self.spec, i, host) for i, nspec in enumerate(self.spec.nodes)
                 if nspec.name in self.nodes}
        self.kube_proxy = KubeProxy(self.spec, views, self.kernel, proxy_store, self._dataplane_pool,
                                    self._typed_one,
                                    lambda ref, reason, msg, actor, ms: self._event(ref, reason, msg, actor=actor,
                                                                                    ms=ms),
                                    guard=self._agent)
        self.proxy_watch = ProxyWatch(self.kube_proxy, proxy_store, self.kubelet.node_alive)
        # spec.timing's watch delay for felix (per node) and the cluster DNS (netsim.node.watch_delay).
        self._felix_watch = WatchDelays(self.spec.timing.delay_for)
        self._dns_watch = WatchDelays(self.spec.timing.delay_for)
        # LoadBalancer and external IPs answered for on the underlay (netsim/agents/speaker.py).
        self.speaker = Speaker(self.spec, self.nodes, self.kernel, self.store,
                               lambda ref, reason, msg, actor: self._event(ref, reason, msg, actor=actor))
        # calico's felix (calico and canal): one calculation graph over the change log, an agent per node
        # (netsim/agents/felix.py).
        self.felix = Felix(cluster, self.nodes if self.network.enforces_policy else (), self.kernel, self.store,
                           lambda ref, reason, msg, actor, ms: self._event(ref, reason, msg, actor=actor, ms=ms),
                           on_invalid=self._invalid, guard=self._agent, watch=self._felix_watch)
        self._seen_rv = -1
        self._waiter: ChangeWaiter | None = None  # the loop's store-change waiter, made on first use
        self._dataplane_dirty = True  # first pass, node failures: sync whatever the store says
        self._net_fp = ""
        self._reported_invalid: dict[str, str] = {}  # object ref -> the error last reported for it
        self._stop = threading.Event()
        # Component health: "running" | "failing" (the last attempt raised; retried next pass) for the
        # reconcile loop and each node agent; the servers report their own thread (NetnsServer.health).
        self._loop_health: dict[str, Any] = {"state": "running", "error": None}
        self._agent_health: dict[str, dict[str, Any]] = {}
        self._health_written: tuple[float, Any] = (0.0, None)
        self.compactor = Compactor(self.store, float(os.environ.get("NETSIM_COMPACTION_INTERVAL",
                                                                    COMPACTION_INTERVAL)))
        self.apiserver: Any = None  # the Kubernetes API endpoint (netsim.apiserver), started when leading
        self.serve_api = True  # tests that drive a Daemon in-process serve none
        # Knative Serving: the activator in the first node's netns, and what the controller needs from here.
        from netsim.controlplane.knative_runtime import KnativeRuntime
        self.knative = KnativeRuntime(self.kernel, self.spec, naming.node_ns(cluster, self.spec.nodes[0].name),
                                      self.spec.node_ip(0), self.workload) \
            if self.spec.nodes and self.role.control else None
        # The control plane's leader election (netsim/leader.py), started by run() in control-plane roles.
        self.elector: Elector | None = None
        self._led = False  # this process has led at least once (the bootstrap objects and the API are up)

    # -- start ---------------------------------------------------------------------------------------
    def bootstrap(self) -> None:
        now = self.clock.now()
        if self.flannel is None and self.nodes:
            self.network.sync(list(self.all_nodes.values()), only=set(self.nodes))
        host = HostFacts.of_this_host()
        with self.store.transaction() as tx:
            for i, nspec in enumerate(self.spec.nodes):
                if nspec.name not in self.nodes:  # each node's own kubelet registers it
                    continue
                node = node_object(self.spec, i, now, host)
                cur = tx.get("Node", None, nspec.name)
                if cur is None:
                    tx.create(node)
                elif o.annotations(cur).get(FAILED_ANNOTATION) != "true":
                    # A restarted kubelet posts its node status first thing (kubelet_node_status.go
                    # syncNodeStatus at start): the heartbeats missed while the daemon was down must not
                    # make the node-lifecycle controller, which was down too, evict the pods now. It also
                    # puts its default labels back (updateDefaultLabels) and reports its machine again.
                    tx.update_status("Node", None, o.name(cur), refreshed_status(cur, node, now))
                    refresh_default_labels(tx, cur, node)
        if self.flannel is not None:  # the leases are the Node objects just posted
            self.flannel.sync()
        self.workload.start()
        if self.leading():
            self._start_leading()
        self.dns_agent.sync()
        self.dns.start()
        self._sync_failed_nodes()  # which kubelets are cut off, before they adopt anything
        self.pods.adopt()

    def leading(self) -> bool:
        """This process runs the controllers now: a control-plane role holding the leader lease."""
        return self.elector is not None and self.elector.leading

    def _start_leading(self) -> None:
        """What the control plane does once it first leads: the objects kubeadm leaves in a cluster, the
        activator, the API endpoint (on the host and, for pods, in the first node's namespace)."""
        if self._led:
            return
        self._led = True
        with self.store.transaction() as tx:
            docs = normalise(bootstrap_objects(self.spec), "<bootstrap>")
            services = tx.list("Service")
            namespaces = {o.name(x) for x in tx.list("Namespace")}
            tx.apply(admit(docs, self.spec, services, namespaces))
        if self.knative is not None:
            self.knative.start()
        if self.apiserver is None and self.serve_api:
            self.apiserver = apiserver.serve(self.spec.name, self.spec, open_store(self.spec.name))
        if self.spec.nodes:  # pods reach the API through the `kubernetes` Service (issue #13)
            apiserver.serve_in_cluster(self.apiserver, self.kernel,
                                       naming.node_ns(self.spec.name, self.spec.nodes[0].name), self.spec.node_ip(0))

    # -- one pass ------------------------------------------------------------------------------------
    def _sync_failed_nodes(self) -> None:
        """Node fail/restore is requested through an annotation; the kernel side happens here."""
        for node in self.store.typed_list("Node"):  # the parse cache's typed Nodes (netsim.model.node)
            name = node.meta.name
            failed = node.meta.annotations.get(FAILED_ANNOTATION) == "true"
            if failed == (name in self.kubelet.failed) or name not in self.nodes:
                continue
            switch, port = fabric.node_port(self.spec, self.spec.node_index(name))
            self.kernel.link_set(switch, port, up=not failed)
            self._dataplane_dirty = True
            if failed:
                self.kubelet.failed.add(name)
                self.kube_proxy.forget(name)
                self.felix.forget(name)
            else:
                self.kubelet.failed.discard(name)
            self._event(f"node/{name}", "NodeFailed" if failed else "NodeRestored",
                        "cut off the underlay, agents stopped" if failed else "back on the underlay")

    def _speaker_members(self) -> list[str]:
        """The live nodes the speakers elect announcers among: this process's live nodes, and the other
        hosts' nodes that are Ready in the store (MetalLB's speakers know each other through memberlist and
        elect the same node; only the elected one's speaker announces)."""
        mine = [n for n in self.nodes if self.kubelet.node_alive(n)]
        if len(self.nodes) == len(self.all_nodes):
            return mine
        return mine + ready_elsewhere(self.store, self.nodes)

    def _sync_proxies(self) -> None:
        self.kube_proxy.sync(self.kubelet.node_alive)

    def _check_proxies(self) -> None:
        self.kube_proxy.check(self.kubelet.node_alive)

    def proxy_pending(self) -> list[str]:
        """Syncs held back by minSyncPeriod or still running (the data plane does not match the store yet)."""
        return self.kube_proxy.pending()

    def watch_pending(self) -> list[str]:
        """felix and the cluster DNS not yet acting on a change (spec.timing's watch delay)."""
        return ([f"felix on {n}: change not heard yet (watch delay)" for n in self._felix_watch.waiting()]
                + ["cluster DNS: change not heard yet (watch delay)"] * self._dns_watch.pending())

    def next_wakeup(self, now: float) -> float:
        """Seconds until a held-back sync or a periodic rule check is due."""
        times = self.kube_proxy.wakeups(now, self.kubelet.node_alive)
        times.append(self.kubelet.prober.next_due(time.time()))  # probes due, or results to collect
        times += [t for t in (self._felix_watch.next_due(now), self._dns_watch.next_due(now)) if t is not None]
        return max(0.0, min(times, default=self.resync))

    def _sync_felix(self) -> None:
        if self.felix.agents:
            self.felix.sync([n for n in self.nodes if self.kubelet.node_alive(n)], self.network.endpoints,
                            self._dataplane_pool)

    def _reap_whatifs(self) -> None:
        """Roll back what-ifs (`verify --diff`) whose client died or whose lease ran out: deleting the
        WhatIf object makes felix render the live policies again in this same pass. Also the first pass
        after a restart, so a what-if never outlives its client by more than a pass."""
        for name, why in whatif.reap(self.store, time.time()):
            self._event(f"WhatIf {whatif.NAMESPACE}/{name}", "WhatIfRolledBack", f"rolled back: {why}",
                        actor="netsim")

    def _sync_pod_network(self) -> None:
        """calico: IPAM gives a node another /26 when its first is full (and may borrow addresses from other
        nodes' blocks); felix/BIRD then route the new block on every other node and blackhole it locally.
        Re-run the calico-node route sync whenever block affinities or borrowed addresses change."""
        fp = self.network.routing_fingerprint()
        if fp and fp != self._net_fp:
            self.network.sync(list(self.all_nodes.values()), only=set(self.nodes))
            self._net_fp = fp

    @contextlib.contextmanager
    def _agent(self, name: str) -> Iterator[None]:
        """Record how one node agent's sync went (a raising sync is "failing" until one succeeds)."""
        try:
            yield
        except Exception as exc:
            self._agent_health[name] = {"state": "failing", "error": f"{type(exc).__name__}: {exc}"}
            raise
        self._agent_health[name] = {"state": "running", "error": None}

    def components(self) -> dict[str, dict[str, Any]]:
        """Every component's health: {"dns": {"state": ...}, "workload": ..., "reconcile": ..., "kube-proxy/N": ...}."""
        out = {"dns": self.dns.health(), "workload": self.workload.health(), "reconcile": dict(self._loop_health)}
        if self.apiserver is not None:
            out["apiserver"] = self.apiserver.health()
        if self.knative is not None:
            out["activator"] = self.knative.health()
        out.update(sorted(self._agent_health.items()))
        return out

    def _write_health(self, *, force: bool = False) -> None:
        comps = self.components()
        last, seen = self._health_written
        now = time.monotonic()
        if not force and comps == seen and now - last < HEALTH_INTERVAL:
            return
        path = self.role.health_path(self.spec.name)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "time": time.time(), "components": comps, "role": self.role.name,
                       "nodes": sorted(self.nodes), "leading": self.leading()}, f)
        os.replace(tmp, path)
        self._health_written = (now, comps)

    def _typed_one(self, obj: Mapping[str, Any]) -> Any | None:
        """One stored object through the model; None (and reported) when it does not parse."""
        typed = self._typed([obj])  # type: ignore[list-item]
        return typed[0] if typed else None

    def _typed(self, objs: list[dict[str, Any]]) -> list[Any]:
        """Stored objects through the model (the store's parse cache: once per resourceVersion). One that
        does not parse (written around the API's validation, or by an older netsim) is left out and reported
        (`_invalid`); the others are programmed as usual."""
        out = []
        for obj in objs:
            try:
                out.append(self.store.decode(obj))
            except Exception as e:  # noqa: BLE001 - one bad object must not stop the data plane of all
                self._invalid(obj, e)
        return out

    def _invalid(self, obj: dict[str, Any], error: Exception) -> None:
        """Report an object the data plane cannot take: an event InvalidObject and the condition
        Programmed=False (reason Invalid) with the error on the object's status, once per distinct error."""
        message = str(error)[:1000]
        ref = o.ref(obj)
        if self._reported_invalid.get(ref) == message:
            return
        self._reported_invalid[ref] = message
        log.warning("%s left out of the data plane: %s", ref, message)
        self._event(ref, "InvalidObject", f"not programmed: {message}")
        status = dict(obj.get("status") or {})
        if o.set_condition(status, "Programmed", "False", self.clock.now(), reason="Invalid", message=message):
            try:
                self.store.update_status(obj["kind"], o.namespace(obj), o.name(obj), status)
            except StoreError as e:  # deleted meanwhile, or too large to take a condition
                log.warning("could not record the condition on %s: %s", ref, e)

    def _event(self, ref: str, reason: str, message: str, *, actor: str = "netsim", ms: float = 0.0) -> None:
        ev.record(self.store, ev.Event(self.clock.now(), actor, ref, reason, message, ms))

    def _write_marker(self, pods: list[str], blockers: list[str], rv: int, pass_seconds: float) -> None:
        """converged: nothing pending anywhere. `apply` reads more: `blockers` (a failed pass, a held-back
        kube-proxy sync: the data plane as a whole lags) hold up every wait, pending `pods` only the waits
        that concern them (netsim.controlplane.readiness), `passSeconds` the longest pass since the last marker."""
        path = converged_path(self.spec.name)
        tmp = f"{path}.tmp"
        pending = pods + blockers
        with open(tmp, "w") as f:
            # failed: pods whose sandbox failed (settled, not pending), so `apply` can say why they are not up
            json.dump({"rv": rv, "converged": not pending, "pending": pending, "pods": pods, "blockers": blockers,
                       "failed": failed_pods(self.store, self.pods.source.unsettled()), "passSeconds": round(pass_seconds, 4),
                       "time": time.time(), "pid": os.getpid()}, f)
        os.replace(tmp, path)

    # Which kinds each data-plane agent reads: it is re-run only after one of them changed. Node objects
    # change every second (heartbeats) and are not among them: node failure and restore, the only node
    # changes these agents care about, set _dataplane_dirty.
    PROXY_KINDS = frozenset({"Service", "EndpointSlice"})
    FELIX_KINDS = frozenset({"Pod", "Namespace", "NetworkPolicy", whatif.KIND})
    DNS_KINDS = frozenset({"Service", "EndpointSlice", "Pod", "Namespace", "StatefulSet"})
    VOLUME_KINDS = frozenset({"ConfigMap", "Secret", "Pod"})  # the sources of configMap/secret/downwardAPI volumes

    def one_pass(self) -> bool:
        """One round of everything; True when something was written (the cluster is still moving). The
        controllers run only while this process leads; the node agents only for this process's nodes."""
        leading = self.leading()
        if leading:
            self._start_leading()
            self._reap_whatifs()
        self._sync_failed_nodes()
        if not self._dataplane_dirty:
            # kube-proxy watches on its own: a Service or slice written from outside (`netsim apply`) reaches
            # the nodes' rules now, not after this pass's controllers and kubelets (its tracker makes this a
            # no-op when neither kind changed); the controllers' own slice writes are synced below.
            self._sync_proxies()
        self.pods.heal_sandboxes()
        if self.pods.services_stale:
            self.pods.sync_service_ports()
        metrics = self.metrics.sample() if self.nodes or leading else None
        if self.knative is not None and leading:
            self.knative.before_pass(self.store, self.controller_memory, self._event)
        applied = reconcile_once(self.store, self.clock, rng=self.rng, config=self.config, metrics=metrics,
                                 memory=self.controller_memory).applied if leading else 0
        writes = 0 if not self.nodes else kubelet_step(self.store, self.kubelet, self.clock, drain_pass=self.spec.timing.kubelet_drain_pass,
                              heartbeat_seconds=status_interval(self.config.node_monitor_grace_seconds),
                              pods=self.pods.work())  # the pods that changed or fell due (pod_sync.py)
        self._sync_pod_network()
        self.pods.update_container_statuses()
        rv = self.store.current_rv()  # read first: a write racing the next line is seen now and next pass
        try:
            changed = self.store.kinds_changed_since(self._seen_rv)
        except Compacted:  # history gone (410): relist, i.e. resync everything from the objects
            changed = self.PROXY_KINDS | self.FELIX_KINDS | self.DNS_KINDS
        self._seen_rv = rv
        if leading:
            self.compactor.tick(time.monotonic())
        dirty, self._dataplane_dirty = self._dataplane_dirty, True  # stays set if a sync below raises
        self._check_proxies()
        now = time.monotonic()
        proxy_due = self.kube_proxy.due(now)
        if changed & self.PROXY_KINDS or dirty or proxy_due:
            self._sync_proxies()
            self.speaker.sync(self._speaker_members())
        elif "Node" in changed and len(self.nodes) < len(self.all_nodes):
            self.speaker.sync(self._speaker_members())  # another host's node came or went
        if self.flannel is not None and ("Node" in changed or dirty):
            self.flannel.sync()
        if changed & self.FELIX_KINDS or dirty or self._felix_watch.pending():
            self._sync_felix()
        if changed & self.DNS_KINDS or dirty:
            self._dns_watch.changed(["coredns"], now)
        if self._dns_watch.due(time.monotonic()):
            self.dns_agent.sync()
            self._dns_watch.seen("coredns")
        if changed & self.VOLUME_KINDS:
            self.pods.sync_volumes()
        if "Service" in changed:
            self.pods.sync_service_ports()
        if self.knative is not None and leading:
            self.knative.after_pass(self.store, self._event)
        self._dataplane_dirty = False
        return bool(applied or writes)

    def run(self) -> None:
        if self.role.name == "agent" and self.role.host:  # counted by waits from now on (daemonctl.read_marker)
            write_first_marker(self.spec.name, self.role.host, os.getpid())
        if self.role.control:
            self.elector = start_elector(self.spec, self.role, lambda: open_store(self.spec.name))
        self.bootstrap()
        # The kubelets' node leases, renewed on their own thread: a long pass never starves them.
        leases = LeaseRenewer(lambda: open_store(self.spec.name),
                              lambda: [n for n in self.nodes if self.kubelet.node_alive(n)],
                              renew_interval(self.config.node_monitor_grace_seconds), time.time)
        leases.start()
        if self.nodes:  # a control-plane process runs no kube-proxy
            self.proxy_watch.start()
        try:
            self._run_loop()
        finally:
            self.proxy_watch.stop()
            leases.stop()
            if self._waiter is not None:
                self._waiter.close()
            if self.elector is not None:
                self.elector.stop()  # releases the lease: a standby takes over at its next retry

    def _wait_for_change(self, rv: int, timeout: float) -> bool:
        """Sleep until the store moves past `rv` or `timeout`: woken by the commit itself (inotify on the
        write-ahead log, netsim/storewatch.py), as an informer's watch delivers a write, instead of polling
        the resourceVersion up to twenty times a second while idle."""
        if self._waiter is None:
            self._waiter = ChangeWaiter(self.store)
        return self._waiter.wait(rv, timeout)

    def _run_loop(self) -> None:
        last_rv = -1
        longest = 0.0  # the longest pass since the last marker (busy passes write none)
        while not self._stop.is_set():
            if not os.path.exists(state.state_file(self.spec.name)):
                # `down` removed the cluster: writing on would recreate its state directory.
                log.info("the cluster's state is gone; stopping")
                break
            failed = False
            seen = self.store.current_rv()  # this pass reads at least this much, maybe not more
            started = time.monotonic()
            try:
                busy = self.one_pass()
                self._loop_health = {"state": "running", "error": None}
            except Exception as exc:  # a daemon survives one bad pass; the log says what happened
                log.exception("reconcile pass failed")
                self._loop_health = {"state": "failing", "error": f"{type(exc).__name__}: {exc}"}
                busy, failed = False, True
                time.sleep(0.2)
            try:
                self._write_health()
            except OSError as exc:
                log.warning("cannot write the health record: %s", exc)
            if not busy and not self.leading():
                # A host agent's own marker says how far its nodes' data plane has come (daemonctl.read_marker
                # joins it to the leader's, which `apply` waits on); standbys write none.
                if self.role.name == "agent":
                    blockers = ((["the last pass failed, see daemon.log"] if failed else []) + self.proxy_pending()
                                + self.watch_pending())
                    write_json(self.role.marker_path(self.spec.name),
                               {"rv": seen, "blockers": blockers, "time": time.time(), "pid": os.getpid()})
                self._wait_for_change(seen, min(self.resync, self.next_wakeup(time.monotonic())))
            elif not busy:
                # A failed pass is never "converged": `netsim apply` must not report success on a data
                # plane that did not get its rules.
                # Only the pods not yet Running and Ready can be pending (pod_source keeps them per change).
                pods = pending_pods(self.store, self.pods.source.unsettled())
                if not pods and self._pods_changed_elsewhere(seen):
                    # The pod view was read past `seen`: a host agent deleted or updated a pod during this
                    # pass. What the controllers make of it (a StatefulSet's next pod to delete, the
                    # EndpointSlice without it) is the next pass's work, so no "converged as of `seen`" now.
                    longest = max(longest, time.monotonic() - started)
                    continue
                blockers = ((["the last pass failed, see daemon.log"] if failed else []) + self.proxy_pending()
                            + self.watch_pending())
                self._write_marker(pods, blockers, seen, max(longest, time.monotonic() - started))
                longest = 0.0
                pending = pods + blockers
                if seen == last_rv or not pending:
                    self._wait_for_change(seen, min(self.resync, self.next_wakeup(time.monotonic())))
                last_rv = seen
            else:
                longest = max(longest, time.monotonic() - started)

    def _pods_changed_elsewhere(self, seen: int) -> bool:
        """On several hosts: a pod changed since `seen` (only host agents write pods during a quiet pass of
        the leader; a client's write is past the rv its wait starts from anyway)."""
        if len(self.nodes) == len(self.all_nodes):
            return False
        try:
            return "Pod" in self.store.kinds_changed_since(seen)
        except Compacted:
            return True

    def stop(self) -> None:
        self._stop.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="netsim-daemon")
    parser.add_argument("cluster")
    parser.add_argument("--role", choices=("daemon", "controlplane", "agent"), default="daemon")
    parser.add_argument("--host", default=None)
    args = parser.parse_args(argv)
    os.umask(0o077)  # the cluster's state (store, logs, records) is root's alone: 0600 files, 0700 dirs
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    st = state.load(args.cluster)
    if st is None:
        raise SystemExit(f"no cluster {args.cluster}")
    if memtrace.install(naming.state_dir(args.cluster)):  # NETSIM_TRACEMALLOC: where the memory goes
        log.info("tracemalloc on: SIGUSR2 writes its top allocations to the state directory")
    spec = parse_cluster(st.spec, Source(state.state_file(args.cluster)))
    d = Daemon(args.cluster, role=Role.parse(spec, args.role, args.host))
    signal.signal(signal.SIGTERM, lambda *_: d.stop())
    log.info("%s for cluster %s started (pid %d)", d.role.describe(), args.cluster, os.getpid())
    try:
        d.run()
    finally:
        if d.apiserver is not None:
            d.apiserver.stop()
        d.kubelet.prober.shutdown()
        d.workload.stop()
        if d.knative is not None:
            d.knative.stop()
        d.dns.stop()
        d._dataplane_pool.shutdown(wait=True)
        log.info("daemon stopped")


__all__ = ["Daemon", "main", "open_store", "rfc3339"]

if __name__ == "__main__":
    main()
