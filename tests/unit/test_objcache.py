"""The object model at the store's read path: typed objects with status, decoded once per resourceVersion."""

from __future__ import annotations

import threading

import pytest

from netsim.model.node import Node
from netsim.model.pod import Pod
from netsim.model.service import Service
from netsim.objcache import ObjectCache
from netsim.store import MemoryStore, SQLiteStore


def pod(name: str, ip: str | None = None, labels: dict | None = None) -> dict:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                                           "labels": labels or {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    if ip:
        obj["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "172.18.0.2",
                         "conditions": [{"type": "Ready", "status": "True"}]}
    return obj


NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"zone": "a"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "unschedulable": True,
                 "taints": [{"key": "k", "effect": "NoSchedule"}, "garbage"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"},
                                 {"type": "Hostname", "address": "n1"}],
                   "conditions": [{"type": "Ready", "status": "True"}], "capacity": {"pods": "110"}}}

LB = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb", "namespace": "default"},
      "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
      "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.1", "ipMode": "VIP"}]}}}


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else SQLiteStore(str(tmp_path / "s.db"))
    yield s
    s.close()


def test_a_second_read_at_the_same_rv_does_not_parse_again_and_a_new_rv_does(store):
    store.create(pod("a", "10.244.1.5"))
    store.create(pod("b"))
    cache = store.object_cache()
    first = store.typed_list("Pod")
    assert cache.decodes == 2
    again = store.typed_list("Pod")
    assert cache.decodes == 2 and [x is y for x, y in zip(first, again, strict=True)] == [True, True]
    assert store.typed("Pod", "default", "a") is first[0] and cache.decodes == 2
    cur = store.get("Pod", "default", "a")
    cur["status"]["phase"] = "Succeeded"
    store.update_status("Pod", "default", "a", cur["status"])
    changed = store.typed_list("Pod")
    assert cache.decodes == 3  # only the object written since
    assert changed[0].status.phase == "Succeeded" and changed[1] is first[1]
    assert store.decode(store.get("Pod", "default", "b")) is first[1]  # a listed dict hits the cache too
    assert cache.decodes == 3


def test_typed_objects_carry_status(store):
    store.create(pod("a", "10.244.1.5"))
    store.create(NODE)
    store.create(LB)
    p = store.typed("Pod", "default", "a")
    assert isinstance(p, Pod) and p.metadata.name == "a"
    assert (p.status.pod_ip, p.status.pod_ips, p.status.host_ip, p.status.ready) == \
        ("10.244.1.5", ("10.244.1.5",), "172.18.0.2", True)
    n = store.typed("Node", None, "n1")
    assert isinstance(n, Node) and n.internal_ip == "172.18.0.2" and n.ready and n.spec.unschedulable
    assert n.spec.pod_cidrs == ("10.244.1.0/24",) and [t.key for t in n.spec.taints] == ["k"]
    assert n.labels["zone"] == "a" and n.status.capacity["pods"] == "110"
    s = store.typed("Service", "default", "lb")
    assert isinstance(s, Service) and s.status.ingress_ips == ("172.18.255.1",)
    assert s.status.load_balancer_ingress[0].ip_mode == "VIP"
    # the client's manifest stays without status: the API server owns it
    assert "status" not in p.to_dict() and "status" not in s.to_dict()


def test_a_pod_without_status_and_with_podip_only():
    cache = ObjectCache()
    bare = cache.decode(pod("a"))
    assert bare.status.pod_ips == () and bare.status.phase is None and not bare.status.ready
    one = pod("b")
    one["status"] = {"podIP": "10.0.0.9", "conditions": "garbage"}  # status is never a reason to fail
    assert cache.decode(one).status.pod_ips == ("10.0.0.9",)


def test_selector_and_namespace_filter_typed_lists(store):
    store.create(pod("a", labels={"app": "web"}))
    store.create(pod("b", labels={"app": "db"}))
    assert [p.meta.name for p in store.typed_list("Pod", selector={"app": "db"})] == ["b"]
    assert [p.meta.name for p in store.typed_list("Pod", "default")] == ["a", "b"]
    assert store.typed_list("Pod", "other") == []


def test_a_bad_stored_object_is_left_out_and_decoded_once(store):
    bad = pod("bad")
    bad["spec"]["containers"] = []  # the model refuses it; the store holds it anyway
    store.create(bad)
    store.create(pod("good"))
    cache = store.object_cache()
    assert [p.meta.name for p in store.typed_list("Pod")] == ["good"]
    assert [p.meta.name for p in store.typed_list("Pod")] == ["good"]
    assert cache.decodes == 2


def test_a_rolled_back_transaction_leaves_nothing_decoded_behind(store):
    store.create(pod("a", "10.0.0.1"))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        cur = tx.get("Pod", "default", "a")
        cur["status"]["podIP"], cur["status"]["podIPs"] = "10.0.0.2", [{"ip": "10.0.0.2"}]
        written = tx.update_status("Pod", "default", "a", cur["status"])
        assert tx.decode(written).status.pod_ip == "10.0.0.2"
        raise RuntimeError("roll back")
    # the same resourceVersion is handed out again, to another version of the object
    cur = store.get("Pod", "default", "a")
    cur["status"]["podIP"], cur["status"]["podIPs"] = "10.0.0.3", [{"ip": "10.0.0.3"}]
    again = store.update_status("Pod", "default", "a", cur["status"])
    assert again["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    assert store.typed("Pod", "default", "a").status.pod_ip == "10.0.0.3"


def test_the_cache_is_bounded_and_an_old_reader_does_not_push_a_newer_version_out():
    cache = ObjectCache(max_objects=2)
    for i in range(3):
        p = pod(f"p{i}")
        p["metadata"]["resourceVersion"] = str(i + 1)
        cache.decode(p)
    assert len(cache) == 2 and cache.decodes == 3
    new, old = pod("p2"), pod("p2")
    new["metadata"]["resourceVersion"], old["metadata"]["resourceVersion"] = "9", "3"
    typed_new = cache.decode(new)
    cache.decode(old)  # an older snapshot's reader
    assert cache.decode(new) is typed_new


def test_threads_share_one_decode_per_version(store):
    for i in range(50):
        store.create(pod(f"p{i}", f"10.0.0.{i + 1}"))
    results: list[list] = []

    def read() -> None:
        results.append(store.typed_list("Pod"))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all([p.status.pod_ip for p in r] == [f"10.0.0.{i + 1}" for i in sorted(range(50), key=lambda i: f"p{i}")]
               for r in results)
    cache = store.object_cache()
    assert 50 <= cache.decodes <= 200  # racing threads may both decode a version, never more than once each
    store.typed_list("Pod")
    assert cache.decodes <= 200 and len(cache) == 50
