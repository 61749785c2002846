"""Model decodes per data-plane pass: how often the readers of the store parse the same object version.

In process, no root, no cluster: a MemoryStore with P pods (two containers each), S Services and their
EndpointSlices, and the store's readers as the daemon wires them:
- the kubelet starting every pod's containers (`ClusterKubelet._start_apps`: the pod, and every Service
  for the service env vars);
- the DNS agent's sync (`DnsAgent`, change-driven);
- kube-proxy's change trackers decoding every changed Service and EndpointSlice (the daemon's
  `_typed_one`).
Two wirings are counted: `per-reader` (each reader parses what it reads, as before the store's parse cache:
`parse_object` per object per read) and `parse cache` (every reader through `Store.decode`/`typed_list`).
Pass 1 is a cold start, pass 2 repeats it after one pod's status and one Service's spec changed. Counted:
calls of the model's Pod/Service/EndpointSlice parsers.

    .venv/bin/python -m benchmarks.bench_decode [PODS] [SERVICES]
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import netsim.model.endpointslice as model_slice
import netsim.model.pod as model_pod
import netsim.model.service as model_service
from netsim.agents.dns import DnsAgent
from netsim.agents.kubelet import ClusterKubelet
from netsim.dns.server import SnapshotHolder
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.store import MemoryStore

SPEC = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "bd"},
                      "spec": {"nodes": [{"name": "n1"}]}}, Source("bench"))
COUNTS: Counter = Counter()


def _count(module: Any, name: str, kind: str) -> None:
    fn = getattr(module, name)

    def counting(*a: Any, **kw: Any) -> Any:
        COUNTS[kind] += 1
        return fn(*a, **kw)
    setattr(module, name, counting)


class _Node:
    def sandbox(self, namespace: str, name: str) -> Any:
        return object()


def populate(store: MemoryStore, pods: int, services: int) -> None:
    for i in range(services):
        store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": "default"},
                      "spec": {"selector": {"app": f"a{i}"}, "ports": [{"port": 80}],
                               "clusterIP": f"10.96.{i // 250}.{i % 250 + 2}"}})
        store.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": f"s{i}-x", "namespace": "default",
                                   "labels": {"kubernetes.io/service-name": f"s{i}"}},
                      "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
                      "endpoints": [{"addresses": [f"10.244.{i // 250}.{i % 250 + 2}"],
                                     "conditions": {"ready": True}}]})
    for i in range(pods):
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "default"},
                      "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x"},
                                                                 {"name": "b", "image": "x"}]},
                      "status": {"phase": "Running", "podIP": f"10.244.9.{i % 250 + 2}"}})


def one_pass(store: MemoryStore, kubelet: ClusterKubelet, dns: DnsAgent, proxy_decode: Any, since: int) -> None:
    for pod in store.list("Pod"):
        kubelet._start_apps(pod)
    dns.sync()
    for c in store.changes_of(("Service", "EndpointSlice"), since):  # kube-proxy's trackers
        proxy_decode(c.object)


def run(pods: int, services: int, cached: bool) -> list[tuple[Counter, float]]:
    store = MemoryStore()
    populate(store, pods, services)

    def uncached(obj: dict) -> Any:
        return parse_object(obj, Source("<store>"))

    decode = store.decode if cached else uncached
    services_fn = (lambda: store.typed_list("Service")) if cached else \
        (lambda: [uncached(x) for x in store.list("Service")])
    kubelet = ClusterKubelet(FakeKernel(), {"n1": _Node()}, None, None, SPEC, services_fn,  # type: ignore[arg-type]
                             decode=decode)
    kubelet.start_container = lambda *a, **kw: True  # type: ignore[method-assign]
    dns = DnsAgent(store, SnapshotHolder())
    if not cached:  # the DNS agent as it was: its own parse of each changed Service and slice
        dns.store = _Uncached(store)  # type: ignore[assignment]
    out = []
    since = 0
    for n in range(2):
        if n == 1:
            p = store.get("Pod", "default", "p0")
            p["status"]["phase"] = "Succeeded"
            store.update_status("Pod", "default", "p0", p["status"])
            s = store.get("Service", "default", "s0")
            s["spec"]["ports"] = [{"port": 81}]
            store.update(s)
        COUNTS.clear()
        t0 = time.perf_counter()
        rv = store.current_rv()
        one_pass(store, kubelet, dns, decode, since)
        since = rv
        out.append((Counter(COUNTS), time.perf_counter() - t0))
    return out


class _Uncached:
    """The store with `decode` parsing every time (the per-reader wiring)."""

    def __init__(self, store: MemoryStore):
        self._store = store

    def decode(self, obj: dict) -> Any:
        return parse_object(obj, Source("<store>"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def main() -> None:
    pods = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    services = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    _count(model_pod, "parse_pod", "Pod")
    _count(model_service, "parse_service", "Service")
    _count(model_slice, "parse_endpointslice", "EndpointSlice")
    print(f"{pods} pods (2 containers each), {services} Services with one EndpointSlice each")
    print(f"{'wiring':<12} {'pass':<28} {'Pod':>8} {'Service':>9} {'Slice':>7} {'total':>8} {'seconds':>8}")
    for cached in (False, True):
        for i, (counts, secs) in enumerate(run(pods, services, cached)):
            label = "cold start" if i == 0 else "1 pod status + 1 Service"
            print(f"{'parse cache' if cached else 'per-reader':<12} {label:<28} {counts['Pod']:>8} "
                  f"{counts['Service']:>9} {counts['EndpointSlice']:>7} {sum(counts.values()):>8} {secs:>8.2f}")


if __name__ == "__main__":
    main()
