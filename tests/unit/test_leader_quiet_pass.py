"""On several hosts the leader writes "converged as of rv S" only if no host agent changed a pod while its
quiet pass ran (netsim.daemon.Daemon._pods_changed_elsewhere): a pod deleted after S has not been answered by
the StatefulSet and EndpointSlice controllers yet."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from netsim.daemon import Daemon
from netsim.store import Compacted, MemoryStore


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def leader(store: MemoryStore, mine: list[str], every: list[str]) -> SimpleNamespace:
    return SimpleNamespace(store=store, nodes=dict.fromkeys(mine), all_nodes=dict.fromkeys(every))


def changed_elsewhere(d: SimpleNamespace, seen: int) -> bool:
    return Daemon._pods_changed_elsewhere(d, seen)  # type: ignore[arg-type]


def test_a_pod_written_during_the_pass_holds_back_the_marker_only_on_several_hosts():
    store = MemoryStore()
    store.create(pod("a"))
    seen = store.current_rv()
    several = leader(store, [], ["node-1", "node-2"])  # a control-plane leader: every node is an agent's
    one = leader(store, ["node-1", "node-2"], ["node-1", "node-2"])
    assert not changed_elsewhere(several, seen)
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}})
    assert not changed_elsewhere(several, seen)  # not a pod: the controllers' next pass has nothing to answer
    store.delete("Pod", "default", "a")  # a host agent's kubelet removed it after the pass read rv `seen`
    assert changed_elsewhere(several, seen)
    assert not changed_elsewhere(one, seen)  # one host: nothing writes pods behind the pass
    assert not changed_elsewhere(several, store.current_rv())


def test_history_compacted_away_counts_as_changed():
    store = MemoryStore()
    store.create(pod("a"))
    seen = store.current_rv()
    store.create(pod("b"))
    store.create(pod("c"))
    store.compact(store.current_rv())
    with pytest.raises(Compacted):
        store.kinds_changed_since(seen - 1)
    assert changed_elsewhere(leader(store, [], ["node-1"]), seen - 1)
