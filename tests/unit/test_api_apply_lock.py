"""`Cluster.apply` keeps SQLite's one write lock short: admission (allocations over every stored Service) and
the copies the store keeps are made on a read view before the write transaction, so the daemon's passes and
node leases are not held up by them; a Service written between the view and the transaction makes the
transaction admit again (no ClusterIP handed out twice). In process, on FakeKernel and a MemoryStore."""

from __future__ import annotations

import contextlib

from netsim import Cluster
from netsim.controlplane.admission import admit
from netsim.kernel.fake import FakeKernel
from netsim.store import MemoryStore


class _WatchedStore(MemoryStore):
    """Records the Service listings made while the write transaction is open."""

    def __init__(self):
        super().__init__()
        self.in_write = False
        self.listed_in_write: list[str] = []
        self.after_view = None  # called once when a read view closes

    @contextlib.contextmanager
    def transaction(self):
        with super().transaction() as tx:
            self.in_write = True
            try:
                yield _Spy(tx, self)
            finally:
                self.in_write = False

    @contextlib.contextmanager
    def snapshot(self):
        with super().snapshot() as view:
            yield view
        hook, self.after_view = self.after_view, None
        if hook is not None:
            hook()


class _Spy:
    def __init__(self, tx, owner):
        self._tx, self._owner = tx, owner

    def list(self, kind, namespace=None, selector=None):
        if self._owner.in_write:
            self._owner.listed_in_write.append(kind)
        return self._tx.list(kind, namespace, selector)

    def __getattr__(self, name):
        return getattr(self._tx, name)


def _services(*names):
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": n, "namespace": "default"},
             "spec": {"selector": {"app": n}, "ports": [{"port": 80}]}} for n in names]


def _cluster(store):
    return Cluster.up({"metadata": {"name": "applylock"}, "spec": {"nodes": 1}}, kernel=FakeKernel(), store=store,
                      daemon=False)


def test_admission_runs_before_the_write_transaction():
    store = _WatchedStore()
    c = _cluster(store)
    try:
        store.listed_in_write.clear()
        lines = c.apply(_services("a", "b", "c"), wait=False)
        assert lines == ["service/a created", "service/b created", "service/c created"]
        assert "Service" not in store.listed_in_write, "admission listed the Services inside the write lock"
        ips = [s["spec"]["clusterIP"] for s in store.list("Service")]
        assert len(set(ips)) == len(ips)
    finally:
        c.close()


def test_a_service_written_after_the_view_makes_the_transaction_admit_again():
    store = _WatchedStore()
    c = _cluster(store)
    try:
        def intrude():
            # Another client takes the very address the view's admission gave to `a`.
            [svc] = admit(_services("intruder"), c.spec, store.list("Service"),
                          [n["metadata"]["name"] for n in store.list("Namespace")])
            store.create(svc)
        store.after_view = intrude
        c.apply(_services("a"), wait=False)
        by_name = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in store.list("Service")}
        assert by_name["a"] != by_name["intruder"]
        assert "Service" in store.listed_in_write  # admitted again inside, against the intruder
    finally:
        c.close()
