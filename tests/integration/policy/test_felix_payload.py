"""Apply the felix payloads to a real kernel in a throwaway netns: they load, round-trip through
iptables-save unchanged, re-apply without duplicating the built-in hooks, and clean up stale objects."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid

import pytest
import yaml

from netsim.model.errors import Source
from netsim.model.networkpolicy import parse_networkpolicy
from netsim.policy.felix import WorkloadEndpoint, render_node
from netsim.policy.model import NamespaceInfo, PodInfo

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("ip", "ipset", "iptables-restore", "iptables-save")),
                       reason="needs ip, ipset and iptables tools"),
]

POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24, 172.17.2.0/24]}
    - namespaceSelector: {matchLabels: {project: myproject}}
      podSelector: {matchLabels: {role: client}}
    - podSelector: {matchLabels: {role: frontend}}
    ports: [{protocol: TCP, port: 6379}, {port: redis}, {protocol: SCTP, port: 7000, endPort: 7010},
            {protocol: UDP, port: 53}, {protocol: UDP, port: 5353}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{protocol: TCP, port: 5978}]
"""
NAMESPACES = [NamespaceInfo("default"), NamespaceInfo("prod", {"project": "myproject"})]
PODS = [
    PodInfo("default", "db", {"role": "db"}, "10.244.0.10", "n0", [("redis", 6380, "TCP")]),
    PodInfo("default", "frontend", {"role": "frontend"}, "10.244.0.11", "n0"),
    PodInfo("prod", "client", {"role": "client"}, "10.244.1.20", "n1"),
]
ENDPOINTS = [WorkloadEndpoint(p.namespace, p.name, p.ip) for p in PODS if p.node == "n0"]
OTHER_COMPONENT_RULE = '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j ACCEPT'


@pytest.fixture
def netns(kernel):
    name = f"netsim-tfelix-{uuid.uuid4().hex[:8]}"
    # netsim's own namespace maker, not `ip netns add`: the first `ip netns add` on a machine bind-mounts
    # /run/netns over itself, which hides the namespaces other tests have mounted there meanwhile (their
    # removal then fails with EBUSY).
    kernel.netns_create(name)
    try:
        yield name
    finally:
        kernel.netns_delete(name)


def in_ns(ns: str, *argv: str, stdin: str | None = None) -> str:
    res = subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(argv)} failed: {res.stderr}\n--- input ---\n{stdin}"
    return res.stdout


def save(ns: str) -> str:
    return in_ns(ns, "iptables-save", "-t", "filter")


def rules(save_text: str) -> list[str]:
    """The rule and chain lines of a save, without the timestamped comments and counters."""
    return [re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in save_text.splitlines()
            if line and not line.startswith("#")]


def apply(ns: str, payload, cleanup_sets: bool = True) -> None:
    in_ns(ns, "ipset", "restore", stdin=payload.ipsets)
    in_ns(ns, "iptables-restore", "--noflush", stdin=payload.filter)
    if cleanup_sets:
        existing = in_ns(ns, "ipset", "list", "-n").split()
        cleanup = payload.ipset_cleanup(existing)
        if cleanup:
            in_ns(ns, "ipset", "restore", stdin=cleanup)


def test_felix_payload_applies_idempotently_and_cleans_up(netns):
    for i, ep in enumerate(ENDPOINTS):  # the workload veths felix would see; both ends stay in this netns
        in_ns(netns, "ip", "link", "add", ep.iface, "type", "veth", "peer", "name", f"tfpeer{i}")
    in_ns(netns, "iptables-restore", "--noflush", stdin=f"*filter\n{OTHER_COMPONENT_RULE}\nCOMMIT\n")

    policies = [parse_networkpolicy(yaml.safe_load(POLICY), Source("t.yaml"))]
    first = render_node(ENDPOINTS, NAMESPACES, PODS, policies, current_filter=save(netns))
    apply(netns, first)
    after_first = save(netns)

    # every rendered rule is in the kernel exactly as we wrote it (modulo protocol-number naming)
    saved = set(rules(after_first))
    for lines in first.chains.values():
        for line in lines:
            assert line.replace("-p 4 ", "-p ipencap ") in saved or line in saved, line

    second = render_node(ENDPOINTS, NAMESPACES, PODS, policies, current_filter=after_first)
    assert any(line.startswith("-D FORWARD") for line in second.filter.splitlines())
    apply(netns, second)
    after_second = save(netns)
    assert rules(after_second) == rules(after_first)
    forward = [line for line in rules(after_second) if line.startswith("-A FORWARD")]
    assert sum(line.endswith("-j cali-FORWARD") for line in forward) == 1
    assert forward[0].endswith("-j cali-FORWARD")  # inserted at the top
    assert OTHER_COMPONENT_RULE in forward and forward.index(OTHER_COMPONENT_RULE) < len(forward) - 2
    assert sum("-j cali-INPUT" in line for line in rules(after_second)) == 1

    sets = in_ns(netns, "ipset", "list", "-n").split()
    assert sorted(sets) == sorted(first.sets)  # temp sets were swapped in and destroyed
    db_named = [n for n, s in first.sets.items() if s.type == "hash:ip,port"][0]
    assert "10.244.0.10,tcp:6380" in in_ns(netns, "ipset", "list", db_named)

    # policies removed: the payload shrinks to the skeleton, stale chains and sets disappear
    third = render_node(ENDPOINTS, NAMESPACES, PODS, [], current_filter=after_second)
    assert third.stale_chains
    apply(netns, third)
    final = rules(save(netns))
    assert not any(":cali-pi-" in line or ":cali-po-" in line for line in final)
    assert in_ns(netns, "ipset", "list", "-n").split() == []
    assert sum(line.endswith("-j cali-FORWARD") for line in final) == 1
    assert OTHER_COMPONENT_RULE in final
