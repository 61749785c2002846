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
    monkeypatch.setattr(metrics_mod, "pod_sample", lambda pod, pids: sampled_pods.append(pod.meta.name)
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


def test_a_sample_reads_the_pods_the_kubelets_hold_not_the_store(tmp_path):
    """The daemon hands the metrics server its pod source (kept from the change log): a sample of 1,000
    pods decodes no stored pod (it listed, i.e. decoded, every pod of the store each resolution)."""
    store = CountingStore()
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "default"},
             "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}, "status": {"phase": "Running"}}
            for i in range(1000)]
    kubelet = SimpleNamespace(node_alive=lambda n: True, kubelets={})
    now = [1000.0]
    server = MetricsServer(store, kubelet, lambda: {}, 15.0, str(tmp_path / "m.json"), clock=lambda: now[0],
                           pods=lambda: pods)
    server.sample()
    now[0] += 15
    server.sample()
    assert store.lists == 0 and len(json.loads((tmp_path / "m.json").read_text())["pods"]) == 1000


def test_the_control_plane_joins_what_the_hosts_agents_report(tmp_path):
    """A cluster on several hosts: each host agent samples its own pods into a file of its own; the control
    plane's sample joins the ones reported within three resolutions (metrics-server scraping every node's
    kubelet), for the HPA and `netsim top`."""
    def pod(name):
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}, "status": {"phase": "Running"}}
    now = [1000.0]
    kubelet = SimpleNamespace(node_alive=lambda n: True, kubelets={})
    agents = {}
    for host, pods in (("h1", [pod("a"), pod("b")]), ("h2", [pod("c")])):
        agents[host] = MetricsServer(MemoryStore(), kubelet, lambda: {}, 1.0, str(tmp_path / f"agent-{host}.json"),
                                     clock=lambda: now[0], pods=lambda pods=pods: pods)
    leader = MetricsServer(MemoryStore(), kubelet, lambda: {}, 1.0, str(tmp_path / "metrics.json"),
                           clock=lambda: now[0], pods=lambda: [],
                           scraped=lambda: [str(tmp_path / "agent-h1.json"), str(tmp_path / "agent-h2.json"),
                                            str(tmp_path / "agent-h3.json")])  # h3 never reported
    for _ in range(2):  # a rate needs two samples
        for a in agents.values():
            a.sample()
        now[0] += 1.0
    view = leader.sample()
    assert sorted(view.pods) == ["default/a", "default/b", "default/c"]
    assert sorted(json.loads((tmp_path / "metrics.json").read_text())["pods"]) == sorted(view.pods)
    now[0] += 2.0
    agents["h1"].sample()  # h2 stops reporting: three resolutions on, its pods drop out
    now[0] += 1.5
    assert sorted(leader.sample().pods) == ["default/a", "default/b"]
