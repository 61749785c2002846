"""metrics-server (netsim/agents/metrics.py): one pass over the running pods of live nodes per metric
resolution, written to metrics.json; between samples the last view, with no store read."""

from __future__ import annotations

import json
from types import SimpleNamespace

import netsim.agents.metrics as metrics_mod
from netsim.agents.metrics import MetricsServer
from netsim.store import MemoryStore


class CountingStore(MemoryStore):
    lists = 0

    def list(self, kind, namespace=None, selector=None):
        self.lists += 1
        return super().list(kind, namespace, selector)


def test_one_sample_per_resolution_over_running_pods_of_live_nodes(tmp_path, monkeypatch):
    sampled_pods: list[str] = []
    real = metrics_mod.pod_sample
    monkeypatch.setattr(metrics_mod, "pod_sample", lambda pod, pids: sampled_pods.append(pod["metadata"]["name"])
                        or real(pod, pids))
    store = CountingStore()
    for name, node, phase in (("a", "n1", "Running"), ("b", "n2", "Running"), ("c", "n1", "Pending")):
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                      "spec": {"nodeName": node, "containers": [{"name": "c"}]}, "status": {"phase": phase}})
    kubelet = SimpleNamespace(node_alive=lambda n: n == "n1", kubelets={})
    now = [1000.0]
    path = tmp_path / "metrics.json"
    server = MetricsServer(store, kubelet, lambda: {}, 15.0, str(path), clock=lambda: now[0])
    server.sample()
    sampled = json.loads(path.read_text())
    assert sampled["resolution"] == 15.0 and sampled["time"] == 1000.0
    assert sampled_pods == ["a"]  # b's node is down, c is not running
    lists = store.lists
    now[0] += 5
    assert server.sample() is server.view and store.lists == lists  # within the resolution: no pass
    now[0] += 11
    server.sample()
    assert store.lists == lists + 1 and json.loads(path.read_text())["time"] == 1016.0
