"""felix programs only the nodes a change concerns (netsim/agents/felix.py), as calico's calculation graph
sends each host only what touches its endpoints (ActiveRulesCalculator, PolicyResolver): a policy selecting
pods of one node programs that node; a pod joining a selector set programs the nodes where a policy using
the set is active; a label nothing selects on programs nothing. Whatever was skipped, every node's last
payload is the one a full render of the store gives."""

from __future__ import annotations

import random

from netsim import naming
from netsim.agents.felix import Felix
from netsim.kernel.fake import FakeKernel
from netsim.policy.felix import WorkloadEndpoint, render_node
from netsim.policy.verify import inputs_from_store
from netsim.store import MemoryStore

NODES = [f"n{i}" for i in range(10)]
PER_NODE = 50


def pod(node: int, i: int, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{node}-{i}", "namespace": f"ns{i % 2}",
                         "labels": {"group": f"g{node}", "app": f"a{i % 5}", **labels}},
            "spec": {"nodeName": f"n{node}",
                     "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": f"10.244.{node}.{i + 10}"}}


def policy(name: str, ns: str, selector: dict, peer: dict, port: int | str = 80) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [peer], "ports": [{"port": port}]}]}}


def endpoints(store: MemoryStore, node: str) -> list[WorkloadEndpoint]:
    return [WorkloadEndpoint(p["metadata"]["namespace"], p["metadata"]["name"], p["status"]["podIP"],
                             f"cali{p['metadata']['name'].replace('-', 'x'):>11}")
            for p in store.list("Pod") if p["spec"]["nodeName"] == node]


def setup(per_node: int = PER_NODE) -> tuple[MemoryStore, FakeKernel, Felix]:
    store = MemoryStore()
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns0", "labels": {"team": "x"}}})
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}})
    for n in range(len(NODES)):
        for i in range(per_node):
            store.create(pod(n, i))
    kernel = FakeKernel()
    for n in NODES:
        kernel.netns_create(naming.node_ns("fn", n))
    felix = Felix("fn", NODES, kernel, store, lambda *e: None)
    return store, kernel, felix


def sync(felix: Felix, store: MemoryStore) -> list[str]:
    return sorted(felix.sync(NODES, lambda n: endpoints(store, n)))


def restores(kernel: FakeKernel) -> int:
    return sum(1 for c in kernel.calls if c[0] == "iptables_restore")


def relabel(store: MemoryStore, ns: str, name: str, **labels: str) -> None:
    cur = store.get("Pod", ns, name)
    cur["metadata"]["labels"] = {**cur["metadata"]["labels"], **labels}
    store.update(cur)


def all_agree(felix: Felix, store: MemoryStore) -> None:
    inputs = inputs_from_store(store, with_whatifs=True)
    for n in NODES:
        full = render_node(endpoints(store, n), *inputs)
        last = felix.agents[n].last
        assert last is not None and last.chains == full.chains and last.sets == full.sets, n


def test_a_change_programs_only_the_nodes_it_concerns():
    store, kernel, felix = setup()
    assert sync(felix, store) == NODES
    before = restores(kernel)
    # A policy selecting the pods of one node: that node, one iptables-restore.
    store.create(policy("only-n3", "ns0", {"group": "g3"}, {"podSelector": {"matchLabels": {"role": "client"}}}))
    assert sync(felix, store) == ["n3"]
    assert restores(kernel) == before + 1
    # A pod on n5 joins the policy's peer set: n3, where the set is used, not n5 (nothing there changed).
    relabel(store, "ns0", "p5-2", role="client")
    assert sync(felix, store) == ["n3"]
    # A label nothing selects on: no node.
    relabel(store, "ns1", "p7-1", colour="blue")
    assert sync(felix, store) == []
    # A pod deleted: its node (its endpoint went).
    store.delete("Pod", "ns1", "p2-3")
    assert sync(felix, store) == ["n2"]
    assert restores(kernel) == before + 3
    all_agree(felix, store)


def test_every_node_agrees_with_a_full_render_through_random_changes():
    store, kernel, felix = setup(per_node=8)
    sync(felix, store)
    rng = random.Random(7)
    peers = [{"podSelector": {"matchLabels": {"role": "client"}}},
             {"namespaceSelector": {"matchLabels": {"team": "x"}}, "podSelector": {"matchLabels": {"app": "a1"}}},
             {"podSelector": {"matchLabels": {"group": "g4"}}}]
    for _ in range(30):
        op = rng.randrange(6)
        n, i = rng.randrange(len(NODES)), rng.randrange(8)
        ns, name = f"ns{i % 2}", f"p{n}-{i}"
        if op == 0:
            store.apply([policy(f"np{rng.randrange(4)}", f"ns{rng.randrange(2)}", {"app": f"a{rng.randrange(5)}"},
                                rng.choice(peers), rng.choice([80, "http"]))])
        elif op == 1 and store.list("NetworkPolicy"):
            p = rng.choice(store.list("NetworkPolicy"))
            store.delete("NetworkPolicy", p["metadata"]["namespace"], p["metadata"]["name"])
        elif op == 2 and store.get("Pod", ns, name) is not None:
            relabel(store, ns, name, **rng.choice([{"role": "client"}, {"role": "x"}, {"app": "a1"},
                                                   {"group": "g4"}, {"colour": "red"}]))
        elif op == 3 and store.get("Pod", ns, name) is not None:
            store.delete("Pod", ns, name)
        elif op == 4 and store.get("Pod", ns, name) is None:
            store.create(pod(n, i, role="client"))
        elif op == 5:
            nsobj = store.get("Namespace", None, "ns1")
            nsobj["metadata"]["labels"] = {} if (nsobj["metadata"].get("labels") or {}) else {"team": "x"}
            store.update(nsobj)
        sync(felix, store)
        all_agree(felix, store)
