"""felix's calculation graph (netsim/agents/felix.py): the payload it renders from the change log is the one a
full listing renders (netsim.policy.verify.inputs_from_store + render_node), and the work of a pass follows
the change: one pod's label change decodes one pod and matches it against each selector once (felix's label
index), a pod status update changes nothing and programs no node."""

from __future__ import annotations

from netsim import naming
from netsim.agents.felix import Felix, FelixCalc
from netsim.kernel.fake import FakeKernel
from netsim.policy.felix import WorkloadEndpoint, render_node
from netsim.policy.verify import inputs_from_store
from netsim.store import MemoryStore

N = 40  # pods
P = 6  # policies, each with one namespace-and-pod selector peer and one pod selector peer


def pod(i: int, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": f"ns{i % 2}", "labels": {"app": f"a{i % P}", **labels}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": f"10.244.0.{i + 10}"}}


def policy(j: int) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"np{j}", "namespace": f"ns{j % 2}"},
            "spec": {"podSelector": {"matchLabels": {"app": f"a{j}"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}},
                                            "podSelector": {"matchLabels": {"role": "client"}}},
                                           {"podSelector": {"matchLabels": {"app": f"a{(j + 1) % P}"}}}],
                                  "ports": [{"port": "http"}]}]}}


def cluster() -> MemoryStore:
    store = MemoryStore()
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns0", "labels": {"team": "x"}}})
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}})
    for i in range(N):
        store.create(pod(i))
    for j in range(P):
        store.create(policy(j))
    return store


ENDPOINTS = [WorkloadEndpoint(f"ns{i % 2}", f"p{i}", f"10.244.0.{i + 10}", f"cali{i:011d}") for i in range(0, N, 3)]


def agrees(calc: FelixCalc, store: MemoryStore) -> bool:
    ns, pods, pols = calc.inputs()
    ours = render_node(ENDPOINTS, ns, pods, pols, selector_members=calc.selector_members)
    full = render_node(ENDPOINTS, *inputs_from_store(store, with_whatifs=True))
    return ours.filter == full.filter and ours.ipsets == full.ipsets


def relabel(store: MemoryStore, i: int, **labels: str) -> None:
    cur = store.get("Pod", f"ns{i % 2}", f"p{i}")
    cur["metadata"]["labels"] = {**cur["metadata"]["labels"], **labels}
    store.update(cur)


def test_the_payload_follows_the_store_through_changes():
    store = cluster()
    calc = FelixCalc(store)
    calc.update()
    assert agrees(calc, store)
    relabel(store, 4, role="client")
    calc.update()
    assert agrees(calc, store)
    ns1 = store.get("Namespace", None, "ns1")
    ns1["metadata"]["labels"] = {"team": "x"}
    store.update(ns1)
    calc.update()
    assert agrees(calc, store)
    store.delete("NetworkPolicy", "ns0", "np0")
    store.delete("Pod", "ns1", "p5")
    store.create({"apiVersion": "netsim.io/v1alpha1", "kind": "WhatIf",
                  "metadata": {"name": "w", "namespace": "kube-system"},
                  "spec": {"policies": [{**policy(2), "spec": {**policy(2)["spec"], "ingress": []}}]}})
    calc.update()
    assert agrees(calc, store)
    store.compact(store.current_rv())
    relabel(store, 7, role="client")
    store.compact(store.current_rv())
    calc.tracker.rv = 1  # compacted past: the next pass relists
    assert calc.update().changed and agrees(calc, store)


def test_one_label_change_matches_one_pod_against_each_selector():
    store = cluster()
    calc = FelixCalc(store)
    first = calc.update()
    sets = len(calc.index.selectors)
    assert first.decoded == N + P and sets == P + 1  # the namespace+role selector is one set, shared
    relabel(store, 4, role="client")
    report = calc.update()
    assert report.changed and report.decoded == 1 and report.evaluations == sets  # not N * sets


def test_a_pod_status_update_programs_no_node():
    store = cluster()
    kernel = FakeKernel()
    kernel.netns_create(naming.node_ns("fx", "n1"))
    events: list = []
    felix = Felix("fx", ["n1"], kernel, store, lambda *e: events.append(e))
    assert felix.sync(["n1"], lambda n: ENDPOINTS) == ["n1"]
    calls = len(kernel.calls)
    p = store.get("Pod", "ns0", "p4")
    store.update_status("Pod", "ns0", "p4", {**p["status"], "conditions": [{"type": "Ready", "status": "True"}]})
    assert felix.sync(["n1"], lambda n: ENDPOINTS) == [] and len(kernel.calls) == calls
    assert felix.calc.update().decoded == 0
    relabel(store, 4, role="client")
    assert felix.sync(["n1"], lambda n: ENDPOINTS) == ["n1"] and [e[1] for e in events] == ["PolicySynced"] * 2
