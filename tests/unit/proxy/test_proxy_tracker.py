"""kube-proxy's change trackers: the service and endpoints maps follow the change log, parse only what
changed, and always equal a full `collect` over every Service and slice."""

from __future__ import annotations

import copy
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.proxy.adapter import collect
from netsim.proxy.model import NodeInfo, ProxyConfig
from netsim.proxy.render import render_full, render_partial
from netsim.proxy.tracker import ProxyTracker
from netsim.store import MemoryStore

NODE = NodeInfo("node-1", ("172.18.0.2",), "10.244.0.0/24")


def parse(obj):
    try:
        return parse_object(obj, Source("<store>"))
    except Exception:  # noqa: BLE001 - left out, as the daemon leaves it out
        return None


def service(i: int, ports=({"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}),
            ns: str = "default", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": ns},
            "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}", "ports": [dict(p) for p in ports], **spec}}


def slice_(i: int, j: int, ips: list[str], ns: str = "default", service_name: str | None = None,
           ports=({"name": "http", "port": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"})) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}-{j}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name or f"svc-{i}"}},
            "addressType": "IPv4", "ports": [dict(p) for p in ports],
            "endpoints": [{"addresses": [ip], "nodeName": "node-1" if k % 2 else "node-2",
                           **({"conditions": {"ready": False}} if ip.endswith(".9") else {})}
                          for k, ip in enumerate(ips)]}


def full_view(store: MemoryStore):
    services = [t for t in map(parse, store.list("Service")) if t is not None]
    slices = [t for t in map(parse, store.list("EndpointSlice")) if t is not None]
    lb = {f"{s['metadata']['namespace']}/{s['metadata']['name']}":
          [i["ip"] for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
          for s in store.list("Service")}
    return collect(services, slices, lb)


class Fed:
    """A tracker fed from a store's change log, as the daemon feeds it."""

    def __init__(self, store: MemoryStore):
        self.store = store
        self.tracker = ProxyTracker(parse)
        self.rv = store.current_rv()
        self.tracker.relist(store.list("Service"), store.list("EndpointSlice"))
        self.tracker.update()

    def sync(self):
        changes = self.store.changes_of(["Service", "EndpointSlice"], self.rv)
        self.rv = max([self.rv] + [c.rv for c in changes])
        self.tracker.record_changes(changes)
        return self.tracker.update()

    def assert_equal_to_full(self):
        sps, eps = full_view(self.store)
        assert sorted(self.tracker.services(), key=lambda s: s.sort_key()) == sorted(sps, key=lambda s: s.sort_key())
        assert self.tracker.endpoints() == eps


def populated(n: int = 50) -> MemoryStore:
    store = MemoryStore()
    with store.transaction() as tx:
        for i in range(n):
            tx.create(service(i))
            tx.create(slice_(i, 1, [f"10.244.{i % 200}.{k + 1}" for k in range(5)]))
    return store


def test_a_one_endpoint_change_parses_one_slice_and_rebuilds_one_service():
    store = populated(50)
    fed = Fed(store)
    assert fed.tracker.parsed == 100
    fed.assert_equal_to_full()
    before_services, before_eps = fed.tracker.services(), dict(fed.tracker.endpoints())
    sl = store.get("EndpointSlice", "default", "svc-7-1")
    sl["endpoints"][0]["addresses"] = ["10.244.99.99"]
    store.update(sl)
    parsed, joined, gen = fed.tracker.parsed, fed.tracker.joined, fed.tracker.generation
    fed.tracker.record_changes(store.changes_of(["Service", "EndpointSlice"], fed.rv))
    assert fed.tracker.pending == {("EndpointSlice", "default", "svc-7-1")}
    res = fed.tracker.update()
    fed.rv = store.current_rv()
    assert fed.tracker.pending == set()
    assert res.services == {("default", "svc-7")} and res.parsed == 1
    assert fed.tracker.parsed - parsed == 1 and fed.tracker.joined - joined == 1
    assert fed.tracker.generation == gen + 1
    fed.assert_equal_to_full()
    # The very same ServicePort tuple, and every other Service's endpoint lists the same objects: the
    # incremental renderer reuses their renders by identity.
    assert fed.tracker.services() is before_services
    changed = {k for k, v in fed.tracker.endpoints().items() if v is not before_eps[k]}
    assert changed == {("default/svc-7:http", "TCP"), ("default/svc-7:dns", "UDP")}


def test_status_writes_and_no_op_rewrites_change_nothing():
    store = populated(5)
    fed = Fed(store)
    gen = fed.tracker.generation
    store.update_status("Service", "default", "svc-1", {"conditions": [{"type": "Programmed", "status": "True"}]})
    store.update(store.get("EndpointSlice", "default", "svc-2-1"))
    res = fed.sync()
    assert res.services == set() and fed.tracker.generation == gen and res.parsed == 2
    # A LoadBalancer IP in status does reach the ports.
    svc = store.get("Service", "default", "svc-1")
    svc["spec"]["type"] = "LoadBalancer"
    store.update(svc)
    store.update_status("Service", "default", "svc-1", {"loadBalancer": {"ingress": [{"ip": "172.18.255.1"}]}})
    assert fed.sync().services == {("default", "svc-1")}
    assert {sp.load_balancer_ips for sp in fed.tracker.services() if sp.name == "svc-1"} == {("172.18.255.1",)}
    fed.assert_equal_to_full()


def test_relist_after_compaction_drops_what_is_gone_and_keeps_what_is_unchanged():
    store = populated(10)
    fed = Fed(store)
    store.delete("Service", "default", "svc-3")
    store.delete("EndpointSlice", "default", "svc-4-1")
    parsed = fed.tracker.parsed
    fed.tracker.relist(store.list("Service"), store.list("EndpointSlice"))
    fed.tracker.update()
    assert fed.tracker.parsed == parsed  # unchanged resourceVersions are not parsed again
    fed.rv = store.current_rv()
    fed.assert_equal_to_full()


def test_invalid_objects_are_left_out_like_the_full_listing():
    store = populated(3)
    fed = Fed(store)
    with store.transaction() as tx:
        bad = tx.get("EndpointSlice", "default", "svc-1-1")
        bad["addressType"] = "Bogus"
        tx.update(bad)
    fed.sync()
    fed.assert_equal_to_full()
    assert fed.tracker.endpoints()[("default/svc-1:http", "TCP")] == []


def test_the_renderer_reuse_path_fires_on_the_tracker_maps():
    store = populated(30)
    fed = Fed(store)
    cfg = ProxyConfig()
    first = render_full(fed.tracker.services(), fed.tracker.endpoints(), NODE, cfg)
    sl = store.get("EndpointSlice", "default", "svc-5-1")
    sl["endpoints"] = sl["endpoints"][:-1]
    store.update(sl)
    fed.sync()
    second = render_partial(first.state, fed.tracker.services(), fed.tracker.endpoints(), NODE, cfg)
    # The previous sorted order, by identity: the same ServicePort objects in the same places.
    assert all(a.sp is b.sp for a, b in zip(second.state.book.seq, first.state.book.seq, strict=True))
    reused = [k for k, e in second.state.ports.items() if e is first.state.ports.get(k)]
    assert len(reused) == 2 * 30 - 2  # every port render but svc-5's two


OPS = st.lists(st.tuples(st.sampled_from(["svc+", "svc-", "svc~", "sl+", "sl-", "sl~", "move"]),
                         st.integers(0, 5), st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None)
@given(OPS, st.integers(1, 4))
def test_any_sequence_of_changes_ends_equal_to_a_full_listing(ops, batch):
    store = populated(4)
    fed = Fed(store)
    rng = random.Random(len(ops))
    for n, (op, i, j, k) in enumerate(ops):
        name = f"svc-{i}-{j}"
        cur_svc, cur_sl = store.get("Service", "default", f"svc-{i}"), store.get("EndpointSlice", "default", name)
        if op == "svc+" and cur_svc is None:
            store.create(service(i, ports=({"name": "http", "port": 80},)[:1 + k % 2]))
        elif op == "svc-" and cur_svc is not None:
            store.delete("Service", "default", f"svc-{i}")
        elif op == "svc~" and cur_svc is not None:
            new = copy.deepcopy(cur_svc)
            new["spec"]["ports"] = [{"name": "http", "port": 80 + k}] + ([{"name": "dns", "port": 53,
                                                                          "protocol": "UDP"}] if k % 2 else [])
            store.update(new)
        elif op == "sl+" and cur_sl is None:
            store.create(slice_(i, j, [f"10.244.{i}.{rng.randrange(1, 12)}" for _ in range(k + 1)]))
        elif op == "sl-" and cur_sl is not None:
            store.delete("EndpointSlice", "default", name)
        elif op == "sl~" and cur_sl is not None:
            new = copy.deepcopy(cur_sl)
            new["endpoints"] = new["endpoints"][:k] + [{"addresses": [f"10.244.{i}.{rng.randrange(1, 12)}"]}]
            store.update(new)
        elif op == "move" and cur_sl is not None:  # the slice is relabelled to another Service
            new = copy.deepcopy(cur_sl)
            new["metadata"]["labels"]["kubernetes.io/service-name"] = f"svc-{(i + 1) % 6}"
            store.update(new)
        if n % batch == 0:
            fed.sync()
            fed.assert_equal_to_full()
    fed.sync()
    fed.assert_equal_to_full()
