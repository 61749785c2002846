"""Cluster.set_node_failed re-reads and retries when the daemon's heartbeat wins the compare-and-swap."""

from __future__ import annotations

import pytest

from netsim.api import Cluster
from netsim.daemon import FAILED_ANNOTATION
from netsim.store import MemoryStore


class HeartbeatRacingStore(MemoryStore):
    """Before each of the first `races` updates, another writer bumps the Node (as a heartbeat does)."""

    def __init__(self, races: int):
        super().__init__()
        self.races = races

    def update(self, obj, expected_rv=None):
        if self.races > 0 and obj.get("kind") == "Node":
            self.races -= 1
            cur = self.get("Node", None, obj["metadata"]["name"])
            cur.setdefault("status", {})["heartbeat"] = self.races
            super().update(cur)
        return super().update(obj, expected_rv)


def cluster_with(store) -> Cluster:
    c = Cluster.__new__(Cluster)
    c.name, c._store = "t", store
    c.require_daemon = lambda: None
    return c


@pytest.mark.parametrize("races", [0, 3])
def test_node_fail_survives_concurrent_heartbeats(races):
    store = HeartbeatRacingStore(races)
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}})
    c = cluster_with(store)
    c.node_fail("node-1")
    assert store.get("Node", None, "node-1")["metadata"]["annotations"][FAILED_ANNOTATION] == "true"
    c.node_restore("node-1")
    assert FAILED_ANNOTATION not in (store.get("Node", None, "node-1")["metadata"].get("annotations") or {})
