"""PodKeyed: a dict of (pod, ...) keys whose pods are forgotten at the cost of their own entries."""

from __future__ import annotations

from netsim.node.backoff import RestartBackoff
from netsim.node.podkeyed import PodKeyed


def test_it_is_a_dict_and_forgets_one_pod_only():
    m: PodKeyed = PodKeyed()
    m[("a", "c1")] = 1
    m[("a", "c2")] = 2
    m[("b", "c1")] = 3
    m["plain"] = 4  # a key that is no tuple belongs to no pod
    assert len(m) == 4 and m[("a", "c2")] == 2 and m.get(("z", "c")) is None and ("b", "c1") in m
    assert sorted(m.keys_of("a")) == [("a", "c1"), ("a", "c2")]
    del m[("a", "c1")]
    assert m.keys_of("a") == [("a", "c2")]
    m.forget("a")
    assert dict(m) == {("b", "c1"): 3, "plain": 4}
    assert m.keys_of("a") == [] and m.keys_of("plain") == []
    m.forget("plain")
    assert "plain" in m
    m[("b", "c1")] = 5  # overwrite keeps one index entry
    m.pop(("b", "c1"))
    assert m.keys_of("b") == [] and dict(m) == {"plain": 4}


def test_forgetting_a_pod_does_not_walk_the_other_pods():
    """2,000 pods, each forgotten in turn: a walk over every key per forget compares pod keys 2 million
    times; through the index about once per pod. Counted (the pod keys' __eq__ calls), not timed."""
    compares = 0

    class Pod(str):
        def __eq__(self, other):
            nonlocal compares
            compares += 1
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    m: PodKeyed = PodKeyed()
    for i in range(2_000):
        m[(Pod(f"ns/p{i}"), "c")] = i
    compares = 0
    for i in range(2_000):
        m.forget(Pod(f"ns/p{i}"))
    assert len(m) == 0 and compares <= 4_000, compares


def test_restart_backoff_forgets_a_pods_containers_only():
    b = RestartBackoff(initial=10, maximum=300)
    b.next(("ns/a", "c"), 0.0)
    b.next(("ns/a", "c"), 1.0)
    b.next(("ns/b", "c"), 1.0)
    assert b.current(("ns/a", "c")) == 20
    b.forget("ns/a")
    assert b.current(("ns/a", "c")) == 0 and b.current(("ns/b", "c")) == 10
