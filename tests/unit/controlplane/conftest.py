"""A control plane on an in-memory store, a driven clock and a fake kubelet."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from netsim.controlplane import objects as o
from netsim.controlplane.fake_kubelet import FakeKubelet
from netsim.controlplane.loop import FakeClock, reconcile_once, run_until_converged
from netsim.controlplane.nodes import node_object
from netsim.controlplane.state import Config
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.model.loader import parse_documents
from netsim.store import MemoryStore


@dataclass
class Harness:
    clock: FakeClock = field(default_factory=FakeClock)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    config: Config = field(default_factory=lambda: Config(node_monitor_grace_seconds=10, pod_eviction_seconds=5))

    def __post_init__(self):
        self.store = MemoryStore(clock=self.clock.now)
        self.kubelet = FakeKubelet(decode=self.store.decode)
        self.metrics = None  # a MetricsView for the HPA controller
        self.memory: dict = {}  # controllers' memory between passes, as the daemon keeps it

    def add_nodes(self, nodes) -> None:
        """nodes: an int or a list of cluster-spec node entries."""
        spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "t"},
                              "spec": {"nodes": nodes}}, Source("<test>"))
        for i, n in enumerate(spec.nodes):
            self.store.create(node_object(spec, i, self.clock.now()))
            self.kubelet.pod_cidrs[n.name] = spec.node_pod_cidr(i)

    def apply(self, text: str) -> None:
        self.store.apply(parse_documents(text))

    def converge(self, timeout: float = 60, **kw):
        kw.setdefault("metrics", self.metrics)
        kw.setdefault("memory", self.memory)
        res = run_until_converged(self.store, self.kubelet, self.clock, timeout, rng=self.rng, config=self.config,
                                  **kw)
        return res

    def once(self):
        return reconcile_once(self.store, self.clock, rng=self.rng, config=self.config, metrics=self.metrics,
                              memory=self.memory)

    def pods(self, ns: str = "default", **labels) -> list[dict]:
        return [p for p in self.store.list("Pod", ns, labels or None)]

    def names(self, ns: str = "default", **labels) -> list[str]:
        return sorted(o.name(p) for p in self.pods(ns, **labels))

    def get(self, kind: str, name: str, ns: str = "default") -> dict:
        return self.store.get(kind, ns, name)


@pytest.fixture
def h() -> Harness:
    return Harness()


def deployment(name="web", replicas=3, image="nginx:1", strategy=None, extra_spec="") -> str:
    strat = f"\n  strategy: {strategy}" if strategy else ""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}{strat}{extra_spec}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: c
        image: {image}
        ports: [{{name: http, containerPort: 8080}}]
"""


@pytest.fixture(autouse=True)
def _snapshot_cache_checked(monkeypatch):
    """Every pass of these tests compares the controllers' snapshot cache with a fresh listing: a controller
    that changes a snapshot object in place (instead of a copy) fails here."""
    from netsim.controlplane.state import SnapshotCache
    monkeypatch.setattr(SnapshotCache, "CHECK", True)
