"""Property: whatever labels pods and namespaces carry and whatever NetworkPolicies exist, the policy model
and the kernel (felix's rules, probed) agree on every (source pod, destination pod, port, protocol).

hypothesis draws label sets for the 8 pods and 3 namespaces of the shared bed (netpol_cluster) and 1-3
random policies (pod/namespace selectors with matchLabels and matchExpressions, ipBlocks with except over
pod IPs, the pod CIDR and the node network, ports by number, by name and as ranges over TCP/UDP/SCTP,
every policyTypes form), applies them in one go and verifies all pairs on all declared ports, via pod IPs
or via the Services. Deterministic (derandomized), no shrinking (each example costs a cluster sync and a
probe round; a failure prints the example instead).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from netpol_cluster import (
    NAMESPACES,
    PODS,
    Bed,
    namespace_manifest,
    netpol,
    pod_labels,
    pod_manifest,
    policy_bed,
    recheck_late,
)

pytestmark = [pytest.mark.root, pytest.mark.slow]

EXAMPLES = 40
TIMEOUT = 0.3

LABEL_VALUES = {"app": ["a", "b", "c"], "role": ["web", "db"], "rank": ["1", "2"]}
NS_VALUES = {"team": ["red", "blue"], "env": ["prod", "dev"]}


def label_sets(values: dict[str, list[str]]) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in values.items()})


def selectors(values: dict[str, list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted(values)
    expr = st.one_of(
        st.builds(lambda k, vs, op: {"key": k, "operator": op, "values": sorted(set(vs))},
                  st.sampled_from(keys), st.lists(st.sampled_from(["a", "b", "web", "db", "1", "red", "prod"]),
                                                  min_size=1, max_size=2), st.sampled_from(["In", "NotIn"])),
        st.builds(lambda k, op: {"key": k, "operator": op}, st.sampled_from(keys),
                  st.sampled_from(["Exists", "DoesNotExist"])))
    return st.builds(lambda ml, me: {**({"matchLabels": ml} if ml else {}), **({"matchExpressions": me} if me else {})},
                     st.dictionaries(st.sampled_from(keys), st.sampled_from(sum(values.values(), [])), max_size=1),
                     st.lists(expr, max_size=1))


# An ipBlock is kept symbolic (which pods' IPs) until the bed's addresses are known.
IPBLOCKS = st.one_of(
    st.builds(lambda k: ("pod", k), st.sampled_from(PODS)),
    st.builds(lambda ks: ("podcidr-except", tuple(sorted(set(ks)))), st.lists(st.sampled_from(PODS), min_size=1,
                                                                               max_size=2)),
    st.just(("nodes",)),
)
PEERS = st.one_of(
    st.builds(lambda s: {"podSelector": s}, selectors(LABEL_VALUES)),
    st.builds(lambda s: {"namespaceSelector": s}, selectors(NS_VALUES)),
    st.builds(lambda n, p: {"namespaceSelector": n, "podSelector": p}, selectors(NS_VALUES), selectors(LABEL_VALUES)),
    st.builds(lambda b: {"ipBlock": b}, IPBLOCKS),
)
PORTS = st.one_of(
    st.builds(lambda p, proto: {"port": p, "protocol": proto}, st.sampled_from([80, 81, 53, 90]),
              st.sampled_from(["TCP", "UDP", "SCTP"])),
    st.sampled_from([{"port": 80}, {"port": "serve"}, {"port": "alt"}, {"port": "dns", "protocol": "UDP"},
                     {"port": "sctp", "protocol": "SCTP"}, {"port": 80, "endPort": 81},
                     {"port": 50, "endPort": 60, "protocol": "UDP"}]),
)
RULES = st.builds(lambda peers, ports: {**({"peers": peers} if peers else {}), **({"ports": ports} if ports else {})},
                  st.lists(PEERS, max_size=2), st.lists(PORTS, max_size=2))
POLICIES = st.fixed_dictionaries({
    "namespace": st.sampled_from(sorted(NAMESPACES)),
    "podSelector": selectors(LABEL_VALUES),
    "policyTypes": st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]),
    "ingress": st.lists(RULES, max_size=2),
    "egress": st.lists(RULES, max_size=2),
})
WORLDS = st.fixed_dictionaries({
    "namespaces": st.fixed_dictionaries({n: label_sets(NS_VALUES) for n in NAMESPACES}),
    "pods": st.fixed_dictionaries({k: label_sets(LABEL_VALUES) for k in PODS}),
    "policies": st.lists(POLICIES, min_size=1, max_size=3),
    "via": st.sampled_from(["pod", "pod", "service"]),
})


def render_block(bed: Bed, sym: tuple[str, ...]) -> dict[str, Any]:
    if sym[0] == "pod":
        return {"cidr": f"{bed.ips[sym[1]]}/32"}
    if sym[0] == "podcidr-except":
        return {"cidr": "10.244.0.0/16", "except": [f"{bed.ips[k]}/32" for k in sym[1]]}
    return {"cidr": "172.18.0.0/16"}


def render_policy(bed: Bed, i: int, p: dict[str, Any]) -> dict[str, Any]:
    def rule(r: dict[str, Any], key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if r.get("peers"):
            out[key] = [{"ipBlock": render_block(bed, peer["ipBlock"])} if "ipBlock" in peer else peer
                        for peer in r["peers"]]
        if r.get("ports"):
            out["ports"] = r["ports"]
        return out
    spec: dict[str, Any] = {"podSelector": p["podSelector"]}
    if p["policyTypes"] is not None:
        spec["policyTypes"] = p["policyTypes"]
    if p["ingress"]:
        spec["ingress"] = [rule(r, "from") for r in p["ingress"]]
    if p["egress"]:
        spec["egress"] = [rule(r, "to") for r in p["egress"]]
    return netpol(f"p{i}", p["namespace"], spec)


@pytest.fixture(scope="module", params=["calico", "canal"])
def bed(request, kernel):
    with policy_bed(kernel, request.param) as b:
        yield b


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(world=WORLDS)
def test_model_and_kernel_agree(bed: Bed, world: dict[str, Any]) -> None:
    c = bed.cluster
    for pol in c.get("NetworkPolicy"):
        c.store.delete("NetworkPolicy", pol["metadata"]["namespace"], pol["metadata"]["name"])
    # svc (what each pod's Service selects) stays, so via=service always finds the pod.
    objs = [namespace_manifest(n, labels) for n, labels in world["namespaces"].items()]
    objs += [pod_manifest(k, {**labels, "svc": pod_labels(k)["svc"]}) for k, labels in world["pods"].items()]
    objs += [render_policy(bed, i, p) for i, p in enumerate(world["policies"])]
    note(f"objects: {objs}")
    c.apply(objs, wait=False)
    bed.settle()
    report = c.verify(via=world["via"], timeout=TIMEOUT)
    assert len(report.cells) == len(PODS) * len(PODS) * 4
    report.cells = recheck_late(c, report.cells, world["via"])
    bad = [f"{x.source} -> {x.destination} {x.port}/{x.protocol}: model={x.expected} kernel={x.observed} "
           f"({x.outcome}) {x.verdict.explain() if x.verdict else ''}" for x in report.disagreements]
    assert report.ok, f"[{bed.plugin}] via {world['via']}: {len(bad)} disagreement(s):\n" + "\n".join(bad[:20])
