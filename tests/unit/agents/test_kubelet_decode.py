"""The kubelet reads pods and Services through the store's parse cache: a container start does not parse its
pod, or every Service of the cluster (for the service env vars), again."""

from __future__ import annotations

from typing import Any

from netsim.agents.kubelet import ClusterKubelet
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.store import MemoryStore

SPEC = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "kd"},
                      "spec": {"nodes": [{"name": "n1"}]}}, Source("c.yaml"))


class NodeKubelet:
    def sandbox(self, namespace: str, name: str) -> Any:
        return object()


def test_container_starts_decode_the_pod_and_the_services_once_per_version():
    store = MemoryStore()
    for i in range(5):
        store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": "default"},
                      "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}], "clusterIP": f"10.96.0.{i + 10}"}})
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                  "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}})
    kubelet = ClusterKubelet(FakeKernel(), {"n1": NodeKubelet()}, None, None, SPEC,  # type: ignore[arg-type]
                             lambda: store.typed_list("Service"), decode=store.decode)
    envs: list[dict[str, str]] = []
    kubelet.start_container = lambda k, sb, pod, c, service_env=None: envs.append(service_env) or True  # type: ignore[method-assign]
    pod = store.get("Pod", "default", "p")
    for _ in range(3):  # three passes starting (or restarting) the pod's containers
        kubelet._start_apps(store.get("Pod", "default", "p"))
    assert len(envs) == 6 and envs[0]["S4_SERVICE_HOST"] == "10.96.0.14"
    assert store.object_cache().decodes == 6  # five Services and the pod, once each
    assert kubelet.decode(pod) is store.typed("Pod", "default", "p")
