"""The kubelet's per-pass pod work (netsim/agents/pod_sync.py) on its own: a store, a fake kernel and stub
per-node kubelets, no daemon. restartPolicy decides whether an exited container is restarted (with the
CrashLoopBackOff back-off) or stays Terminated, as pkg/kubelet/kuberuntime computePodActions does."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from netsim.agents.pod_sync import PodSync
from netsim.controlplane.loop import RealClock
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.node.kubelet import ContainerProcess
from netsim.node.network import NodeRec
from netsim.store import MemoryStore

SPEC = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "ps"},
                      "spec": {"nodes": [{"name": "n1"}]}}, Source("c.yaml"))


@dataclass
class NodeKubelet:
    procs: dict[str, ContainerProcess] = field(default_factory=dict)

    @property
    def containers(self) -> dict[str, dict[str, ContainerProcess]]:
        return {"default/p": self.procs}

    def poll_containers(self, key: str) -> dict[str, ContainerProcess]:
        return self.procs

    def sandbox(self, namespace: str, name: str) -> Any:
        return object()


class Inits:
    def state(self, pod: Any) -> None:
        return None


class Played:
    def peek(self, *key: Any) -> None:
        return None

    def down(self, key: str) -> set[str]:
        return set()


class Prober:
    def pod_in_flight(self, key: str) -> bool:
        return False


@dataclass
class StubKubelet:
    kubelets: dict[str, NodeKubelet]
    started: list[str] = field(default_factory=list)
    workload: Any = None
    dns: Any = None
    setup: Any = None
    probes: dict = field(default_factory=dict)
    inits: Inits = field(default_factory=Inits)
    played: Played = field(default_factory=Played)
    prober: Prober = field(default_factory=Prober)

    def node_alive(self, node: str | None) -> bool:
        return node == "n1"

    def retry_refused(self, pod: Any) -> None:
        pass

    def start_container(self, kubelet: NodeKubelet, sb: Any, pod: Any, c: dict[str, Any]) -> bool:
        self.started.append(c["name"])
        kubelet.procs[c["name"]] = ContainerProcess(c["name"], None, "", time.time())
        return True


def setup(policy: str, *, deleting: bool = False) -> tuple[MemoryStore, StubKubelet, PodSync, list]:
    store = MemoryStore()
    meta: dict[str, Any] = {"name": "p", "namespace": "default"}
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                  "spec": {"nodeName": "n1", "restartPolicy": policy, "containers": [{"name": "c", "image": "x"}]},
                  "status": {"podIP": "10.244.0.5", "phase": "Running"}})
    if deleting:
        pod = store.get("Pod", "default", "p")
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        store.update(pod)
    kubelet = StubKubelet({"n1": NodeKubelet()})
    events: list = []
    sync = PodSync(SPEC, {"n1": NodeRec("n1", "172.18.0.2", "10.244.0.0/24")}, FakeKernel(), store,
                   kubelet, RealClock(), lambda *e: events.append(e))  # type: ignore[arg-type]
    return store, kubelet, sync, events


def exit_(kubelet: StubKubelet, code: int) -> None:
    now = time.time()
    kubelet.kubelets["n1"].procs["c"] = ContainerProcess("c", None, "", now - 1, exit_code=code, finished=now)


def pass_(sync: PodSync) -> None:
    """The pod side of one pass: the pods due (work), then their statuses."""
    sync.work()
    sync.update_container_statuses()


def state(store: MemoryStore) -> dict[str, Any]:
    return store.get("Pod", "default", "p")["status"]["containerStatuses"][0]


@pytest.mark.parametrize("policy,code,restarted", [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 1, True),
    ("OnFailure", 0, False), ("Never", 1, False), ("Never", 0, False)])
def test_restart_policy_decides_whether_an_exited_container_comes_back(policy, code, restarted):
    store, kubelet, sync, _ = setup(policy)
    exit_(kubelet, code)
    pass_(sync)
    assert kubelet.started == (["c"] if restarted else [])
    st = state(store)
    if restarted:
        assert "running" in st["state"] and st["lastState"]["terminated"]["exitCode"] == code
    else:
        assert st["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")


def test_a_second_exit_waits_out_the_back_off():
    store, kubelet, sync, events = setup("Always")
    exit_(kubelet, 1)
    pass_(sync)
    exit_(kubelet, 1)
    pass_(sync)
    assert kubelet.started == ["c"]
    assert state(store)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert [e[1] for e in events] == ["BackOff"]


def test_a_pod_being_deleted_restarts_nothing():
    store, kubelet, sync, _ = setup("Always", deleting=True)
    exit_(kubelet, 1)
    pass_(sync)
    assert kubelet.started == [] and state(store)["state"]["terminated"]["exitCode"] == 1


class VolumeSetup:
    """Records which pods each volume sync was asked to rewrite."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def sync_volumes(self, pods: list[dict[str, Any]], host_ip: Any) -> list:
        self.asked.append(sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods))
        return []


def test_a_volume_sync_follows_the_changed_sources_not_the_pods():
    """The first sync looks at every pod (a resync); then a pod's change asks for that pod (its downward
    API), a ConfigMap's or Secret's for the pods of its namespace, and no change for none."""
    store = MemoryStore()
    for ns, name in (("default", "p"), ("default", "q"), ("other", "r")):
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                      "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
                      "status": {"podIP": "10.244.0.5", "phase": "Running"}})
    kubelet = StubKubelet({"n1": NodeKubelet()}, setup=VolumeSetup())
    sync = PodSync(SPEC, {"n1": NodeRec("n1", "172.18.0.2", "10.244.0.0/24")}, FakeKernel(), store,
                   kubelet, RealClock(), lambda *e: None)  # type: ignore[arg-type]
    sync.sync_volumes()
    q = store.get("Pod", "default", "q")
    q["metadata"]["labels"] = {"tier": "web"}
    store.update(q)
    sync.sync_volumes()
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "other"},
                  "data": {"k": "v"}})
    sync.sync_volumes()
    sync.sync_volumes()
    assert kubelet.setup.asked == [["default/p", "default/q", "other/r"], ["default/q"], ["other/r"], []]
