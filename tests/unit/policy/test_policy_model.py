"""The expected truth table (netsim.policy.model): Kubernetes docs examples and tricky cases."""

from __future__ import annotations

import pytest
import yaml

from netsim.model.errors import Source
from netsim.model.networkpolicy import parse_networkpolicy
from netsim.policy.model import (
    ALLOWED_BY_POLICY,
    HOST_TO_LOCAL_POD,
    LOOPBACK,
    NO_RULE_MATCHED,
    NOT_A_POD,
    NOT_ISOLATED,
    ExternalEndpoint,
    NamespaceInfo,
    NodeEndpoint,
    PodInfo,
    PolicyModel,
    RuleRef,
    truth_table,
)

NAMESPACES = [
    NamespaceInfo("default"),
    NamespaceInfo("prod", {"project": "myproject", "env": "prod"}),
    NamespaceInfo("dev", {"env": "dev"}),
]
DB = PodInfo("default", "db", {"role": "db"}, "10.244.0.10", "node-0", [("redis", 6379, "TCP"), ("dns", 53, "UDP")])
FRONTEND = PodInfo("default", "frontend", {"role": "frontend"}, "10.244.1.11", "node-1")
OTHER = PodInfo("default", "other", {"role": "other"}, "10.244.1.12", "node-1")
PROD_API = PodInfo("prod", "api", {"role": "api"}, "10.244.0.20", "node-0", [("http", 8080, "TCP")])
PROD_CLIENT = PodInfo("prod", "client", {"role": "client"}, "10.244.1.21", "node-1")
DEV_CLIENT = PodInfo("dev", "client", {"role": "client"}, "10.244.2.30", "node-2")
PODS = [DB, FRONTEND, OTHER, PROD_API, PROD_CLIENT, DEV_CLIENT]
EXTERNAL_IN = ExternalEndpoint("172.17.5.5", "client")
EXTERNAL_EXCEPT = ExternalEndpoint("172.17.1.9")


def pol(text: str):
    return parse_networkpolicy(yaml.safe_load(text), Source("t.yaml"))


def model(*texts: str, pods=PODS) -> PolicyModel:
    return PolicyModel(NAMESPACES, pods, [pol(t) for t in texts])


DOCS_EXAMPLE = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
    - namespaceSelector: {matchLabels: {project: myproject}}
    - podSelector: {matchLabels: {role: frontend}}
    ports: [{protocol: TCP, port: 6379}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{protocol: TCP, port: 5978}]
"""

DENY_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""
ALLOW_ALL_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-ingress, namespace: default}
spec: {podSelector: {}, ingress: [{}], policyTypes: [Ingress]}
"""
DENY_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: default}
spec: {podSelector: {}, policyTypes: [Egress]}
"""
ALLOW_ALL_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-egress, namespace: default}
spec: {podSelector: {}, egress: [{}], policyTypes: [Egress]}
"""
DENY_ALL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-all, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
"""


# ---------------------------------------------------------------- no policies
def test_no_policies_everything_allowed_and_not_isolated():
    v = model().verdict(FRONTEND, DB, 6379)
    assert v.allowed
    assert v.egress.reason == NOT_ISOLATED and v.ingress.reason == NOT_ISOLATED


# ---------------------------------------------------------------- the docs example
def test_docs_example_frontend_pod_allowed_on_6379():
    v = model(DOCS_EXAMPLE).verdict(FRONTEND, DB, 6379)
    assert v.allowed
    assert v.ingress.match == RuleRef("default/test-network-policy", "ingress", 0, 2, 0)


def test_docs_example_wrong_port_denied_and_names_policy():
    v = model(DOCS_EXAMPLE).verdict(FRONTEND, DB, 6380)
    assert not v.allowed
    assert v.ingress.reason == NO_RULE_MATCHED
    assert v.denied_by == ("default/test-network-policy",)
    assert "denied" in v.explain()


def test_docs_example_namespace_selector_allows_any_pod_of_project():
    m = model(DOCS_EXAMPLE)
    assert m.verdict(PROD_CLIENT, DB, 6379).ingress.match.peer == 1
    assert m.verdict(PROD_API, DB, 6379).allowed
    assert not m.verdict(DEV_CLIENT, DB, 6379).allowed


def test_docs_example_pod_selector_peer_is_policy_namespace_only():
    dev_frontend = PodInfo("dev", "fe", {"role": "frontend"}, "10.244.2.40", "node-2")
    m = model(DOCS_EXAMPLE, pods=PODS + [dev_frontend])
    assert not m.verdict(dev_frontend, DB, 6379).allowed
    assert not m.verdict(OTHER, DB, 6379).allowed


def test_docs_example_ipblock_and_except():
    m = model(DOCS_EXAMPLE)
    v = m.verdict(EXTERNAL_IN, DB, 6379)
    assert v.allowed and v.ingress.match.peer == 0 and v.egress.reason == NOT_A_POD
    assert not m.verdict(EXTERNAL_EXCEPT, DB, 6379).allowed


def test_docs_example_egress():
    m = model(DOCS_EXAMPLE)
    assert m.verdict(DB, ExternalEndpoint("10.0.0.7"), 5978).allowed
    assert not m.verdict(DB, ExternalEndpoint("10.0.1.7"), 5978).allowed
    assert not m.verdict(DB, ExternalEndpoint("10.0.0.7"), 5979).allowed
    # db's egress to other pods is cut too (egress isolated), while other pods are unaffected
    v = m.verdict(DB, FRONTEND, 80)
    assert not v.allowed and v.egress.reason == NO_RULE_MATCHED and v.ingress.reason == NOT_ISOLATED
    assert m.verdict(FRONTEND, OTHER, 80).allowed


# ---------------------------------------------------------------- default policies
def test_default_deny_ingress_isolates_namespace_only():
    m = model(DENY_INGRESS)
    assert not m.verdict(FRONTEND, DB, 80).allowed
    assert not m.verdict(PROD_CLIENT, DB, 80).allowed
    assert m.verdict(DB, PROD_API, 80).allowed  # other namespace untouched, egress not isolated


def test_allow_all_ingress_overrides_deny():
    m = model(DENY_INGRESS, ALLOW_ALL_INGRESS)
    v = m.verdict(DEV_CLIENT, DB, 1234, "UDP")
    assert v.allowed
    assert v.ingress.match == RuleRef("default/allow-all-ingress", "ingress", 0, None, None)
    assert v.ingress.isolated_by == ("default/allow-all-ingress", "default/default-deny-ingress")


def test_default_deny_egress():
    m = model(DENY_EGRESS)
    assert not m.verdict(DB, PROD_API, 8080).allowed
    assert not m.verdict(DB, ExternalEndpoint("8.8.8.8"), 53, "UDP").allowed
    assert m.verdict(PROD_API, DB, 6379).allowed  # ingress into default not isolated


def test_allow_all_egress():
    m = model(DENY_EGRESS, ALLOW_ALL_EGRESS)
    assert m.verdict(DB, ExternalEndpoint("8.8.8.8"), 53, "UDP").allowed


def test_default_deny_all_both_directions():
    m = model(DENY_ALL)
    assert not m.verdict(DB, FRONTEND, 80).allowed
    v = m.verdict(PROD_CLIENT, DB, 80)
    assert not v.allowed and v.egress.allowed and not v.ingress.allowed


def test_policy_types_implied_ingress_only_does_not_isolate_egress():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: implied, namespace: default}
spec: {podSelector: {matchLabels: {role: db}}}
""")
    assert not m.verdict(FRONTEND, DB, 80).allowed
    assert m.verdict(DB, FRONTEND, 80).allowed


def test_policy_types_implied_egress_when_egress_rules():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: implied-egress, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  egress: [{to: [{podSelector: {matchLabels: {role: frontend}}}]}]
""")
    assert m.verdict(DB, FRONTEND, 80).allowed
    assert not m.verdict(DB, OTHER, 80).allowed
    assert not m.verdict(OTHER, DB, 80).allowed  # defaulted types include Ingress, no ingress rules


# ---------------------------------------------------------------- AND vs OR
AND_POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}}
      podSelector: {matchLabels: {role: client}}
"""
OR_POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: or, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}}
    - podSelector: {matchLabels: {role: client}}
"""


def test_namespace_and_pod_selector_in_one_peer_is_and():
    m = model(AND_POLICY)
    assert m.verdict(PROD_CLIENT, DB, 80).allowed
    assert not m.verdict(PROD_API, DB, 80).allowed  # right namespace, wrong pod
    assert not m.verdict(DEV_CLIENT, DB, 80).allowed  # right pod, wrong namespace


def test_two_peers_are_or():
    m = model(OR_POLICY)
    assert m.verdict(PROD_API, DB, 80).allowed  # namespace matches
    default_client = PodInfo("default", "c", {"role": "client"}, "10.244.1.50", "node-1")
    m = model(OR_POLICY, pods=PODS + [default_client])
    assert m.verdict(default_client, DB, 80).allowed  # pod in policy namespace
    assert not m.verdict(DEV_CLIENT, DB, 80).allowed  # client, but not in the policy's namespace


def test_empty_pod_selector_peer_means_all_pods_in_policy_namespace():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-ns, namespace: default}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}]}]
""")
    assert m.verdict(FRONTEND, DB, 80).allowed
    assert not m.verdict(PROD_CLIENT, DB, 80).allowed


def test_empty_namespace_selector_means_all_namespaces():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all-ns, namespace: default}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}]}]
""")
    assert m.verdict(DEV_CLIENT, DB, 80).allowed
    assert m.verdict(FRONTEND, DB, 80).allowed
    assert not m.verdict(EXTERNAL_IN, DB, 80).allowed  # selectors only match pods


def test_namespace_name_label_is_defaulted():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: by-name, namespace: default}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dev}}}]}]
""")
    assert m.verdict(DEV_CLIENT, DB, 80).allowed
    assert not m.verdict(PROD_CLIENT, DB, 80).allowed


def test_match_expressions_notin():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: notin, namespace: default}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [dev]}]}}]
""")
    assert m.verdict(PROD_CLIENT, DB, 80).allowed
    assert m.verdict(FRONTEND, DB, 80).allowed  # default has no env label: NotIn matches
    assert not m.verdict(DEV_CLIENT, DB, 80).allowed


# ---------------------------------------------------------------- ports
def test_endport_range_docs_example():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: multi-port-egress, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{protocol: TCP, port: 32000, endPort: 32768}]
""")
    ext = ExternalEndpoint("10.0.0.1")
    assert m.verdict(DB, ext, 32000).allowed
    assert m.verdict(DB, ext, 32768).allowed
    assert not m.verdict(DB, ext, 32769).allowed
    assert not m.verdict(DB, ext, 31999).allowed
    assert not m.verdict(DB, ext, 32100, "UDP").allowed


NAMED = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: named, namespace: default}
spec:
  podSelector: {}
  ingress: [{ports: [{port: redis}, {port: dns, protocol: UDP}]}]
"""


def test_named_port_resolves_per_destination_pod():
    m = model(NAMED)
    assert m.verdict(FRONTEND, DB, 6379).allowed
    assert not m.verdict(FRONTEND, DB, 6380).allowed
    assert m.verdict(FRONTEND, DB, 53, "UDP").allowed
    assert not m.verdict(FRONTEND, DB, 53, "TCP").allowed  # name exists for UDP only
    assert not m.verdict(DB, OTHER, 6379).allowed  # `other` has no port named redis


def test_named_port_egress_to_external_never_matches():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: named-egress, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: http}]}]
""")
    assert m.verdict(PROD_CLIENT, PROD_API, 8080).allowed
    assert not m.verdict(PROD_CLIENT, ExternalEndpoint("1.1.1.1"), 8080).allowed


def test_protocol_must_match():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: udp-only, namespace: default}
spec:
  podSelector: {}
  ingress: [{ports: [{protocol: UDP, port: 53}, {protocol: SCTP}]}]
""")
    assert m.verdict(FRONTEND, DB, 53, "UDP").allowed
    assert not m.verdict(FRONTEND, DB, 53, "TCP").allowed
    assert m.verdict(FRONTEND, DB, 9999, "sctp").allowed


# ---------------------------------------------------------------- ipBlock, nodes, self
def test_ipblock_matches_pod_ips_like_calico():
    m = model("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: pod-cidr, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{ipBlock: {cidr: 10.244.1.0/24, except: [10.244.1.12/32]}}]}]
""")
    assert m.verdict(FRONTEND, DB, 80).allowed  # 10.244.1.11, a pod IP, matches the block
    assert not m.verdict(OTHER, DB, 80).allowed  # excepted
    assert not m.verdict(DEV_CLIENT, DB, 80).allowed


def test_node_to_local_pod_always_allowed():
    m = model(DENY_ALL)
    v = m.verdict(NodeEndpoint("node-0", "172.18.0.2"), DB, 6379)
    assert v.allowed and v.ingress.reason == HOST_TO_LOCAL_POD


def test_node_to_remote_pod_is_policed_by_ipblock():
    m = model(DENY_INGRESS)
    assert not m.verdict(NodeEndpoint("node-1", "172.18.0.3"), DB, 6379).allowed
    m = model(DENY_INGRESS, """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: nodes, namespace: default}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 172.18.0.0/16}}]}]
""")
    assert m.verdict(NodeEndpoint("node-1", "172.18.0.3"), DB, 6379).allowed


def test_pod_to_itself_loopback_vs_service_hairpin():
    m = model(DENY_ALL)
    assert m.verdict(DB, DB, 6379).ingress.reason == LOOPBACK
    assert m.verdict(DB, DB, 6379).allowed
    assert not m.verdict(DB, DB, 6379, via_service=True).allowed


def test_policy_in_other_namespace_does_not_select():
    m = model(DENY_INGRESS.replace("namespace: default", "namespace: prod"))
    assert m.verdict(FRONTEND, DB, 80).allowed
    assert not m.verdict(FRONTEND, PROD_API, 80).allowed


def test_union_of_policies_and_reason_order():
    m = model(DOCS_EXAMPLE, NAMED)
    v = m.verdict(OTHER, DB, 6379)
    assert v.allowed and v.ingress.reason == ALLOWED_BY_POLICY
    assert v.ingress.match.policy == "default/named"
    assert v.ingress.isolated_by == ("default/named", "default/test-network-policy")


def test_verdict_to_dict_shape():
    d = model(DOCS_EXAMPLE).verdict(FRONTEND, DB, 6380).to_dict()
    assert d["allowed"] is False and d["from"] == "default/frontend" and d["to"] == "default/db"
    assert d["ingress"]["isolatedBy"] == ["default/test-network-policy"]
    assert d["egress"]["reason"] == NOT_ISOLATED


def test_truth_table_helper():
    table = truth_table(NAMESPACES, [DB, FRONTEND, OTHER], [pol(DOCS_EXAMPLE)], [6379, 80], ["TCP", "UDP"])
    assert len(table) == 3 * 2 * 2 * 2  # ordered pairs without self, 2 ports, 2 protocols
    assert table[("default/frontend", "default/db", 6379, "TCP")] is True
    assert table[("default/frontend", "default/db", 6379, "UDP")] is False
    assert table[("default/other", "default/db", 6379, "TCP")] is False
    assert table[("default/db", "default/frontend", 80, "TCP")] is False  # db egress isolated
    assert table[("default/other", "default/frontend", 80, "TCP")] is True


@pytest.mark.parametrize("src,port,expected", [
    (FRONTEND, 6379, True), (OTHER, 6379, False), (PROD_CLIENT, 6379, True), (DEV_CLIENT, 6379, False),
    (EXTERNAL_IN, 6379, True), (EXTERNAL_EXCEPT, 6379, False), (FRONTEND, 80, False),
])
def test_docs_example_matrix(src, port, expected):
    assert model(DOCS_EXAMPLE).verdict(src, DB, port).allowed is expected
