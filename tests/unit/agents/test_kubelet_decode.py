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


def test_pod_source_kubelet_and_controllers_share_one_decode_per_version():
    """The kubelet's pod source, its pod-level reads and the controllers' snapshot read the same typed Pod:
    one decode per resourceVersion for all of them (the parse cache, `Store.decode`)."""
    from netsim.agents.pod_source import PodSource
    from netsim.controlplane.state import SnapshotCache

    store = MemoryStore()
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                  "spec": {"nodeName": "n1", "restartPolicy": "OnFailure", "containers": [{"name": "a", "image": "x"}]},
                  "status": {"phase": "Running", "podIP": "10.244.0.7"}})
    kubelet = ClusterKubelet(FakeKernel(), {"n1": NodeKubelet()}, None, None, SPEC,  # type: ignore[arg-type]
                             lambda: [], decode=store.decode)
    source = PodSource(store)
    source.poll()
    pod = source.pods["default/p"]
    before = store.object_cache().decodes
    typed = kubelet.typed(pod)
    assert typed.spec.restart_policy == "OnFailure" and typed.status.pod_ip == "10.244.0.7"
    assert kubelet.host_network(pod) is False and kubelet._node(pod) == "n1"
    snap = SnapshotCache().load(store)
    assert snap.typed("Pod")[0] is typed  # the controllers' typed Pod is the kubelet's
    assert store.object_cache().decodes == before == 1


def test_a_pod_that_does_not_parse_is_read_leniently_and_refused_a_sandbox():
    """One bad pod (written around validation) never stops a kubelet pass: its pod-level reads go on from a
    lenient read (node, status), and create_sandbox refuses it before anything is made, naming the field."""
    import pytest

    from netsim.model.errors import NetsimError

    store = MemoryStore()
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "default"},
                  "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x", "ports": [
                      {"containerPort": "eighty"}]}]}, "status": {"podIP": "10.244.0.9"}})
    made: list[str] = []

    class Node(NodeKubelet):
        def run_sandbox(self, *a: Any) -> Any:
            made.append("sandbox")

    kubelet = ClusterKubelet(FakeKernel(), {"n1": Node()}, None, None, SPEC,  # type: ignore[arg-type]
                             lambda: [], decode=store.decode)
    pod = store.get("Pod", "default", "bad")
    assert kubelet._node(pod) == "n1" and kubelet.typed(pod).status.pod_ip == "10.244.0.9"
    with pytest.raises(NetsimError, match="containerPort"):
        kubelet.create_sandbox(pod)
    assert made == []
