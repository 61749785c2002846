"""A kubelet pass works on the pods that changed or fell due, not on every pod (netsim/agents/pod_source.py,
netsim/agents/pod_sync.py), as a kubelet's config source dispatches one pod's ADD/UPDATE/DELETE to its pod
worker: with 1,000 settled pods, one pod changed is one pod synced (one pod_state, one container poll);
an idle pass syncs none; a settled pod is synced again after the resync period; a pod whose container
process exited is synced next pass (the PLEG)."""

from __future__ import annotations

import time
from typing import Any

from netsim.agents import pod_sync as ps
from netsim.agents.pod_sync import PodSync
from netsim.controlplane import objects as o
from netsim.controlplane.fake_kubelet import FakeKubelet
from netsim.controlplane.loop import PodState, RealClock, kubelet_step
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.node.kubelet import ContainerProcess
from netsim.node.network import NodeRec
from netsim.store import MemoryStore

N = 1000
SPEC = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "pw"},
                      "spec": {"nodes": [{"name": "n1"}]}}, Source("c.yaml"))


class Proc:
    """A container process: running until `code` is set."""

    def __init__(self) -> None:
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code


class NodeKubelet:
    def __init__(self) -> None:
        self.containers: dict[str, dict[str, ContainerProcess]] = {}
        self.polled: list[str] = []

    def poll_containers(self, key: str) -> dict[str, ContainerProcess]:
        self.polled.append(key)
        for cp in self.containers.get(key, {}).values():
            if cp.exit_code is None and cp.proc is not None and cp.proc.poll() is not None:
                cp.exit_code, cp.finished = cp.proc.poll(), time.time()
        return self.containers.get(key, {})

    def sandbox(self, namespace: str, name: str) -> Any:
        return object()


class Nothing:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class Played(Nothing):
    def down(self, key: str) -> set[str]:
        return set()


class Prober(Nothing):
    def pod_in_flight(self, key: str) -> bool:
        return False


class Kubelets(FakeKubelet):
    """The control loop's kubelet (FakeKubelet: IPs, states) with what PodSync asks of ClusterKubelet;
    counts pod_state calls."""

    def __init__(self) -> None:
        super().__init__({"n1": "10.244.0.0/16"})
        self.kubelets = {"n1": NodeKubelet()}
        self.workload = self.dns = self.setup = None
        self.probes: dict = {}
        self.inits, self.played, self.prober = Nothing(), Played(), Prober()
        self.states: list[str] = []

    def pod_state(self, pod: dict[str, Any]) -> PodState:
        self.states.append(o.key(pod))
        return super().pod_state(pod)

    def retry_refused(self, pod: Any) -> None:
        pass

    def start_container(self, kubelet: NodeKubelet, sb: Any, pod: Any, c: dict[str, Any]) -> bool:
        kubelet.containers.setdefault(o.key(pod), {})[c["name"]] = ContainerProcess(c["name"], Proc(), "",
                                                                                     time.time())  # type: ignore[arg-type]
        return True


def pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "default",
                                                          "labels": {"app": "a"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}


def one_pass(store: MemoryStore, kubelets: Kubelets, sync: PodSync, clock: RealClock) -> int:
    """The pod side of a daemon pass (Daemon.one_pass): the due pods through the kubelet step, then their
    container statuses. Returns how many pods it synced."""
    kubelets.states.clear()
    kubelets.kubelets["n1"].polled.clear()
    pods = sync.work()
    kubelet_step(store, kubelets, clock, pods=pods)
    sync.update_container_statuses()
    return len(pods)


def settled() -> tuple[MemoryStore, Kubelets, PodSync, RealClock]:
    store = MemoryStore()
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    for i in range(N):
        store.create(pod(i))
    kubelets = Kubelets()
    clock = RealClock()
    sync = PodSync(SPEC, {"n1": NodeRec("n1", "172.18.0.2", "10.244.0.0/24")}, FakeKernel(), store,
                   kubelets, clock, lambda *e: None)  # type: ignore[arg-type]
    assert one_pass(store, kubelets, sync, clock) == N  # the first pass: every pod (the initial list)
    for _ in range(5):  # the echoes of the kubelet's own status writes, then quiet
        if one_pass(store, kubelets, sync, clock) == 0:
            break
    assert all(o.is_ready(p) for p in store.list("Pod"))
    return store, kubelets, sync, clock


def test_one_pod_changed_is_one_pod_synced():
    store, kubelets, sync, clock = settled()
    assert one_pass(store, kubelets, sync, clock) == 0 and kubelets.states == []  # idle: nothing
    p = store.get("Pod", "default", "p17")
    p["metadata"]["labels"]["tier"] = "web"
    store.update(p)
    assert one_pass(store, kubelets, sync, clock) == 1
    assert kubelets.states == ["default/p17"] and kubelets.kubelets["n1"].polled == ["default/p17"]
    assert one_pass(store, kubelets, sync, clock) <= 1  # the echo of its status write, if any
    store.delete("Pod", "default", "p18")  # gone: nothing to sync (housekeeping removes its sandbox)
    assert one_pass(store, kubelets, sync, clock) == 0 and kubelets.states == []


def test_settled_pods_are_synced_again_after_the_resync_period(monkeypatch):
    store, kubelets, sync, clock = settled()
    t = [time.monotonic()]
    sync.source.clock = lambda: t[0]
    t[0] += ps.RESYNC_PERIOD + 1
    assert one_pass(store, kubelets, sync, clock) == N  # every settled pod fell due
    assert one_pass(store, kubelets, sync, clock) == 0


def test_a_settled_pod_is_not_synced_again_within_the_kubelets_sync_frequency():
    """--sync-frequency is 1 min by default: half a minute of idle passes syncs no settled pod (it was
    every pod every 10 s, a hundred pods a second at 1,000 pods)."""
    store, kubelets, sync, clock = settled()
    t = [time.monotonic()]
    sync.source.clock = lambda: t[0]
    for _ in range(6):
        t[0] += 5
        assert one_pass(store, kubelets, sync, clock) == 0
    t[0] += 31
    assert one_pass(store, kubelets, sync, clock) == N


def test_an_exited_container_process_is_synced_next_pass():
    store, kubelets, sync, clock = settled()
    proc = Proc()
    kubelets.kubelets["n1"].containers["default/p3"] = {"c": ContainerProcess("c", proc, "", time.time())}  # type: ignore[arg-type]
    assert one_pass(store, kubelets, sync, clock) == 0
    proc.code = 1
    assert one_pass(store, kubelets, sync, clock) == 1 and kubelets.states == ["default/p3"]


class Sandbox:
    def __init__(self, netns: str, uid: str | None) -> None:
        self.netns, self.uid = netns, uid


def test_housekeeping_looks_at_no_pod_whose_sandbox_is_listed(monkeypatch):
    """heal_sandboxes (every 2 s) compared each pod's sandbox with the kernel by one netns lookup per pod
    (1,000 stats every 2 s at 1,000 pods); now one listing compared with the sandbox records, and only a
    pod whose record's netns is not listed (or that has no record) is looked at."""
    from netsim import naming

    store = MemoryStore()
    for i in range(100):
        store.create({**pod(i), "status": {"phase": "Running", "podIP": f"10.244.0.{i + 2}"}})
    kernel, kubelets = FakeKernel(), Kubelets()
    sync = PodSync(SPEC, {"n1": NodeRec("n1", "172.18.0.2", "10.244.0.0/24")}, kernel, store,
                   kubelets, RealClock(), lambda *e: None)  # type: ignore[arg-type]
    node = kubelets.kubelets["n1"]
    boxes = {o.key(p): Sandbox(naming.pod_ns("pw", "default", o.name(p)), o.uid(p)) for p in store.list("Pod")}
    for sb in boxes.values():
        kernel.netns_create(sb.netns)
    looked: list[str] = []
    monkeypatch.setattr(node, "sandbox", lambda ns, name: looked.append(name) or boxes.get(f"{ns}/{name}"),
                        raising=False)
    monkeypatch.setattr(node, "sandboxes", lambda: dict(boxes), raising=False)
    monkeypatch.setattr(node, "sandbox_alive", lambda sb: kernel.netns_exists(sb.netns), raising=False)
    healed: list[str] = []

    def delete_sandbox(pod, keep_volumes=False):
        healed.append(o.name(pod))
        boxes.pop(o.key(pod))

    monkeypatch.setattr(kubelets, "delete_sandbox", delete_sandbox, raising=False)
    sync.heal_sandboxes()
    assert looked == [] and healed == []  # before: all 100 looked up, each with a netns stat
    kernel.netns_delete(boxes["default/p5"].netns)  # `netsim kill pod`
    sync.source._housekeeping = 0.0
    sync.heal_sandboxes()
    assert looked == ["p5"] and healed == ["p5"]


def test_the_pods_of_a_pass_that_failed_are_synced_again_next_pass(monkeypatch):
    """A pass that raises between its kubelet step and the status update (a sandbox teardown failing on a
    kernel error) does not lose its pods: they come back next pass, as a failed pod sync is requeued.
    Before, a terminating pod caught in such a pass was never synced again and stayed Terminating."""
    store, kubelets, sync, clock = settled()
    for i in (5, 6):
        p = store.get("Pod", "default", f"p{i}")
        p["metadata"]["labels"]["tier"] = "web"
        store.update(p)
    pods = sync.work()
    assert sorted(o.key(p) for p in pods) == ["default/p5", "default/p6"]
    # the kubelet step raised here: update_container_statuses never ran
    assert sorted(o.key(p) for p in sync.work()) == ["default/p5", "default/p6"]
    sync.update_container_statuses()
    assert one_pass(store, kubelets, sync, clock) <= 2  # settled again: at most their status echoes
    assert one_pass(store, kubelets, sync, clock) == 0
