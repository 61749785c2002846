"""Parsing, validation and defaulting of NetworkPolicy manifests (netsim.model.networkpolicy)."""

from __future__ import annotations

import copy

import pytest
import yaml

from netsim.model.errors import Source, SpecError
from netsim.model.networkpolicy import IPBlock, Peer, PolicyPort, parse_networkpolicy, port_name_problem

SRC = Source("policies.yaml", 2)

# The example of the Kubernetes concepts page (network-policies.md, "The NetworkPolicy resource").
DOCS_EXAMPLE = yaml.safe_load("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
""")


def np(spec: dict, name: str = "p", namespace: str | None = "prod") -> dict:
    md = {"name": name}
    if namespace:
        md["namespace"] = namespace
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": md, "spec": spec}


def test_docs_example_parses_and_round_trips():
    p = parse_networkpolicy(DOCS_EXAMPLE, SRC)
    assert p.key == "default/test-network-policy"
    assert p.policy_types == ("Ingress", "Egress")
    assert p.ingress[0].peers[0] == Peer(ip_block=IPBlock("172.17.0.0/16", ("172.17.1.0/24",)))
    assert p.ingress[0].peers[1].pod_selector is None
    assert p.ingress[0].peers[1].namespace_selector.match_labels == (("project", "myproject"),)
    assert p.ingress[0].ports == (PolicyPort("TCP", 6379),)
    again = parse_networkpolicy(p.to_dict(), SRC)
    assert again == p
    assert again.to_dict() == p.to_dict()


def test_policy_types_default_ingress_only():
    p = parse_networkpolicy(np({"podSelector": {}, "ingress": [{}]}), SRC)
    assert p.policy_types == ("Ingress",)
    assert p.to_dict()["spec"]["policyTypes"] == ["Ingress"]


def test_policy_types_default_adds_egress_when_egress_rules():
    p = parse_networkpolicy(np({"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]}), SRC)
    assert p.policy_types == ("Ingress", "Egress")  # k8s API defaulting: Ingress always


def test_explicit_egress_only_kept():
    p = parse_networkpolicy(np({"podSelector": {}, "policyTypes": ["Egress"]}), SRC)
    assert p.policy_types == ("Egress",)
    assert not p.affects_ingress and p.affects_egress


def test_protocol_defaults_to_tcp_and_namespace_to_default():
    p = parse_networkpolicy(np({"podSelector": {}, "ingress": [{"ports": [{"port": 80}, {}]}]},
                               namespace=None), SRC)
    assert p.namespace == "default"
    assert p.ingress[0].ports == (PolicyPort("TCP", 80), PolicyPort("TCP", None))
    assert p.to_dict()["spec"]["ingress"][0]["ports"][1] == {"protocol": "TCP"}


def test_named_port_endport_sctp_and_cidr_normalised():
    p = parse_networkpolicy(np({"podSelector": {}, "egress": [{
        "to": [{"ipBlock": {"cidr": "10.0.0.7/24", "except": ["10.0.0.129/25"]}}],
        "ports": [{"port": "metrics"}, {"protocol": "SCTP", "port": 32000, "endPort": 32768}]}]}), SRC)
    rule = p.egress[0]
    assert rule.peers[0].ip_block == IPBlock("10.0.0.0/24", ("10.0.0.128/25",))
    assert rule.ports[0].named and rule.ports[0].port == "metrics"
    assert rule.ports[1] == PolicyPort("SCTP", 32000, 32768)


def test_empty_rule_and_empty_from_list_mean_all():
    p = parse_networkpolicy(np({"podSelector": {}, "ingress": [{}, {"from": []}]}), SRC)
    assert p.ingress[0].peers == () and p.ingress[1].peers == ()


def test_both_selectors_in_one_peer_kept_together():
    p = parse_networkpolicy(np({"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"user": "alice"}}, "podSelector": {"matchLabels": {"role": "client"}}}
    ]}]}), SRC)
    peer = p.ingress[0].peers[0]
    assert peer.namespace_selector is not None and peer.pod_selector is not None


def test_port_name_rules():
    assert port_name_problem("http") is None
    assert port_name_problem("a-1") is None
    assert port_name_problem("123") is not None
    assert port_name_problem("Http") is not None
    assert port_name_problem("-http") is not None


def _spec_ingress(rule: dict) -> dict:
    return {"podSelector": {}, "ingress": [rule]}


INVALID = [
    ("no podSelector", {"ingress": [{}]}, "spec.podSelector"),
    ("bad policy type", {"podSelector": {}, "policyTypes": ["Inbound"]}, "spec.policyTypes[0]"),
    ("duplicate policy type", {"podSelector": {}, "policyTypes": ["Egress", "Egress"]}, "spec.policyTypes[1]"),
    ("unknown spec field", {"podSelector": {}, "ingres": []}, "spec.ingres"),
    ("ingress not a list", {"podSelector": {}, "ingress": {"from": []}}, "spec.ingress"),
    ("bad protocol", _spec_ingress({"ports": [{"protocol": "ICMP", "port": 1}]}), "spec.ingress[0].ports[0].protocol"),
    ("port zero", _spec_ingress({"ports": [{"port": 0}]}), "spec.ingress[0].ports[0].port"),
    ("port too big", _spec_ingress({"ports": [{"port": 65536}]}), "spec.ingress[0].ports[0].port"),
    ("port bool", _spec_ingress({"ports": [{"port": True}]}), "spec.ingress[0].ports[0].port"),
    ("named port uppercase", _spec_ingress({"ports": [{"port": "HTTP"}]}), "spec.ingress[0].ports[0].port"),
    ("named port digits only", _spec_ingress({"ports": [{"port": "8080"}]}), "spec.ingress[0].ports[0].port"),
    ("named port too long", _spec_ingress({"ports": [{"port": "a-very-long-port-name"}]}),
     "spec.ingress[0].ports[0].port"),
    ("named port double dash", _spec_ingress({"ports": [{"port": "a--b"}]}), "spec.ingress[0].ports[0].port"),
    ("endPort without port", _spec_ingress({"ports": [{"endPort": 90}]}), "spec.ingress[0].ports[0].endPort"),
    ("endPort with named port", _spec_ingress({"ports": [{"port": "http", "endPort": 90}]}),
     "spec.ingress[0].ports[0].endPort"),
    ("endPort below port", _spec_ingress({"ports": [{"port": 100, "endPort": 90}]}),
     "spec.ingress[0].ports[0].endPort"),
    ("empty peer", _spec_ingress({"from": [{"podSelector": {}}, {}]}), "spec.ingress[0].from[1]"),
    ("ipBlock with selector", _spec_ingress({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}),
     "spec.ingress[0].from[0].ipBlock"),
    ("ipBlock bad cidr", _spec_ingress({"from": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}),
     "spec.ingress[0].from[0].ipBlock.cidr"),
    ("ipBlock no prefix", _spec_ingress({"from": [{"ipBlock": {"cidr": "10.0.0.1"}}]}),
     "spec.ingress[0].from[0].ipBlock.cidr"),
    ("ipBlock missing cidr", _spec_ingress({"from": [{"ipBlock": {"except": ["10.0.0.0/9"]}}]}),
     "spec.ingress[0].from[0].ipBlock.cidr"),
    ("except outside cidr", _spec_ingress({"from": [{"ipBlock": {"cidr": "10.0.0.0/16",
                                                                  "except": ["10.0.1.0/24", "10.1.0.0/24"]}}]}),
     "spec.ingress[0].from[0].ipBlock.except[1]"),
    ("except equal to cidr", _spec_ingress({"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/16"]}}]}),
     "spec.ingress[0].from[0].ipBlock.except[0]"),
    ("egress rule with from", {"podSelector": {}, "egress": [{"from": []}]}, "spec.egress[0].from"),
    ("bad selector operator", {"podSelector": {}, "egress": [{"to": [
        {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}}]}]},
     "spec.egress[0].to[0].namespaceSelector.matchExpressions[0].operator"),
    ("bad podSelector label", {"podSelector": {"matchLabels": {"bad key!": "x"}}}, "spec.podSelector.matchLabels"),
    ("unknown port field", _spec_ingress({"ports": [{"port": 80, "portRange": 9}]}), "spec.ingress[0].ports[0].portRange"),
]


@pytest.mark.parametrize("what,spec,field", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_names_file_object_and_field(what, spec, field):
    with pytest.raises(SpecError) as ei:
        parse_networkpolicy(np(spec), SRC)
    err = ei.value
    assert err.field is not None and err.field.startswith(field), (err.field, field)
    assert err.obj == "NetworkPolicy prod/p"
    text = str(err)
    assert "policies.yaml (document 3)" in text and "NetworkPolicy prod/p" in text and field in text


def test_wrong_api_version_and_missing_name():
    doc = copy.deepcopy(DOCS_EXAMPLE)
    doc["apiVersion"] = "extensions/v1beta1"
    with pytest.raises(SpecError) as ei:
        parse_networkpolicy(doc, SRC)
    assert ei.value.field == "apiVersion"
    doc = copy.deepcopy(DOCS_EXAMPLE)
    del doc["metadata"]["name"]
    with pytest.raises(SpecError) as ei:
        parse_networkpolicy(doc, SRC)
    assert ei.value.field == "metadata.name"


def test_missing_spec():
    doc = copy.deepcopy(DOCS_EXAMPLE)
    del doc["spec"]
    with pytest.raises(SpecError) as ei:
        parse_networkpolicy(doc, SRC)
    assert ei.value.field == "spec"
