"""One class per concept (issue #16 item 1): a pod as the data plane sees it, an EndpointSlice's endpoint, a
node view and a Node object each have one class; the other names are aliases of it or name another concept. Read from
the source, so a second class of a concept cannot come back unnoticed."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "netsim"
CLASS = re.compile(r"^[ \t]*class (\w+)\b", re.M)


def class_definitions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for path in ROOT.rglob("*.py"):
        for m in CLASS.finditer(path.read_text()):
            out[m.group(1)].append(str(path.relative_to(ROOT.parent)))
    return out


# The model's concept classes: each name is defined by one class in netsim/ at most (the old names PodInfo and
# NodeInfo by none: they are aliases of PodView and NodeView).
CONCEPTS = ("Pod", "PodView", "PodInfo", "Node", "NodeView", "NodeInfo", "Service", "EndpointSlice", "Endpoint",
            "PodStatus", "NodeStatus")


def test_no_concept_class_is_defined_twice():
    defs = class_definitions()
    twice = {name: sorted(defs[name]) for name in CONCEPTS if len(defs[name]) > 1}
    assert twice == {}, f"a concept's class name defined more than once: {twice}"


def test_one_class_per_concept():
    defs = class_definitions()
    assert defs["PodView"] == ["netsim/model/podview.py"]
    # trace's pod is the pod's place in the kernel (netns, host veth, routes), a concept with a name of its own
    assert defs["PodKernelState"] == ["netsim/trace/view.py"]
    assert defs["PodInfo"] == []  # policy's and DNS's PodInfo are names of PodView
    assert defs["Node"] == ["netsim/model/node.py"]
    # An EndpointSlice's endpoint; kube-proxy's per-port endpoint (pkg/proxy BaseEndpointInfo, `Endpoint` in
    # kube-proxy's code) is its own concept upstream too. A probe's end and the API server's port record have
    # names of their own.
    assert defs["Endpoint"] == ["netsim/model/endpointslice.py"] and defs["EndpointInfo"] == ["netsim/proxy/model.py"]
    assert defs["ProbeEndpoint"] == ["netsim/api.py"] and defs["ApiEndpoint"] == ["netsim/apiserver/endpoint.py"]


def test_old_names_still_work():
    from netsim import api
    from netsim.apiserver import endpoint
    from netsim.dns import records
    from netsim.model.podview import PodView
    from netsim.policy import model
    from netsim.proxy import model as proxy_model

    assert api.Endpoint is api.ProbeEndpoint and endpoint.Endpoint is endpoint.ApiEndpoint
    assert proxy_model.Endpoint is proxy_model.EndpointInfo
    assert model.PodInfo is PodView and records.PodInfo is PodView


def test_one_node_view_built_from_the_one_node_class():
    """kube-proxy and the scheduler read a node through the one node view (netsim.model.nodeview.NodeView);
    the scheduler's pods counted on a node (pkg/scheduler/framework's NodeInfo) are a NodeUsage holding it.
    `NodeInfo` is no class any more: proxy.model.NodeInfo names NodeView, the scheduler's names NodeUsage."""
    from netsim.controlplane import scheduler
    from netsim.model.cluster import Taint
    from netsim.model.errors import Source
    from netsim.model.node import parse_node
    from netsim.model.nodeview import NodeView
    from netsim.proxy import model as proxy_model

    defs = class_definitions()
    assert defs["NodeInfo"] == [] and defs["NodeView"] == ["netsim/model/nodeview.py"]
    # trace's node is its observed kernel state, a concept of its own with a name of its own
    assert defs["NodeKernelState"] == ["netsim/trace/view.py"]
    assert proxy_model.NodeInfo is NodeView and scheduler.NodeInfo is scheduler.NodeUsage
    node = parse_node({"kind": "Node", "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}},
                       "spec": {"podCIDRs": ["10.244.1.0/24", "fd00:1::/64"],
                                "taints": [{"key": "k", "effect": "NoSchedule"}]},
                       "status": {"addresses": [{"type": "Hostname", "address": "n1"},
                                                {"type": "ExternalIP", "address": "203.0.113.9"},
                                                {"type": "InternalIP", "address": "172.18.0.2"},
                                                {"type": "InternalIP", "address": "172.18.0.3"},
                                                {"type": "ExternalIP", "address": "fd00::9"}]}},
                      Source("<test>"))
    view = NodeView.from_node(node)
    # GetNodeHostIPs: InternalIP before ExternalIP, the first address of each family.
    assert view.proxy_key == ("n1", ("172.18.0.2", "fd00::9"), "10.244.1.0/24", "z1")
    assert view.taints == (Taint("k", "NoSchedule"),) and view.labels == {"topology.kubernetes.io/zone": "z1"}
    usage = scheduler.NodeUsage.from_node(node)
    assert usage.node == view and usage.name == "n1" and usage.pod_count == 0


def test_a_relabelled_node_keeps_kube_proxys_render_state():
    """Labels and taints are in the node view but not in what kube-proxy's rules depend on: a relabel or a
    cordon must not force a full re-render (the render state's fingerprint)."""
    from dataclasses import replace

    from netsim.model.nodeview import NodeView
    from netsim.proxy.model import ProxyConfig
    from netsim.proxy.render import _fingerprint

    base = NodeView("n1", ("172.18.0.2",), "10.244.1.0/24", "z1")
    cfg = ProxyConfig()
    assert _fingerprint(replace(base, labels={"a": "b"}, unschedulable=True), cfg) == _fingerprint(base, cfg)
    assert _fingerprint(replace(base, ips=("172.18.0.3",)), cfg) != _fingerprint(base, cfg)


POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "np", "namespace": "ns0"},
          "spec": {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Ingress"],
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}}


def test_each_policy_version_is_parsed_once_per_process(monkeypatch):
    """felix's calculation graph and the policy model (`netsim verify`, trace) read stored NetworkPolicies
    through the store's parse cache: a version is parsed once whoever reads it and however often; a new
    version once more; a what-if policy of the same name is parsed on its own and never stands for the
    stored one."""
    import copy

    from netsim.agents.felix import FelixCalc
    from netsim.controlplane import whatif
    from netsim.model import networkpolicy
    from netsim.policy.verify import inputs_from_store
    from netsim.store import MemoryStore

    parses: list[str] = []
    real = networkpolicy.parse_networkpolicy

    def counting(doc, source):
        parses.append(doc["metadata"]["name"])
        return real(doc, source)

    monkeypatch.setattr(networkpolicy, "parse_networkpolicy", counting)
    store = MemoryStore()
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns0"}})
    store.create(copy.deepcopy(POLICY))
    other = copy.deepcopy(POLICY)
    other["metadata"]["name"] = "np2"
    store.create(other)
    calc = FelixCalc(store)
    for _ in range(3):  # felix, verify and trace passes over unchanged policies
        calc.update()
        inputs_from_store(store)
        inputs_from_store(store, with_whatifs=True)
    assert sorted(parses) == ["np", "np2"]
    cur = store.get("NetworkPolicy", "ns0", "np")
    cur["spec"]["podSelector"] = {"matchLabels": {"app": "b"}}
    store.update(cur)
    calc.update()
    (_, _, pols) = inputs_from_store(store)
    assert sorted(parses) == ["np", "np", "np2"]
    assert {p.name: dict(p.pod_selector.match_labels) for p in pols}["np"] == {"app": "b"}
    # A what-if with the live policy's name and resourceVersion: parsed apart, the cache keeps the stored one.
    fake = copy.deepcopy(store.get("NetworkPolicy", "ns0", "np"))
    fake["spec"]["podSelector"] = {"matchLabels": {"app": "whatif"}}
    store.create({"apiVersion": whatif.API_VERSION, "kind": whatif.KIND,
                  "metadata": {"name": "w", "namespace": whatif.NAMESPACE}, "spec": {"policies": [fake]}})
    (_, _, with_w) = inputs_from_store(store, with_whatifs=True)
    (_, _, without) = inputs_from_store(store)
    assert {p.name: dict(p.pod_selector.match_labels) for p in with_w}["np"] == {"app": "whatif"}
    assert {p.name: dict(p.pod_selector.match_labels) for p in without}["np"] == {"app": "b"}


def test_each_nodes_kube_proxy_sees_the_one_node_view_of_its_registered_node():
    """The daemon's kube-proxy knows its node through NodeView.from_node of the Node object its kubelet
    registers (controlplane.nodes.node_view), not through a view filled from the cluster state's records:
    IPs, pod CIDR and zone as the Node says them, so the two cannot drift apart."""
    from netsim.controlplane.nodes import HostFacts, node_object, node_view
    from netsim.model.cluster import parse_cluster
    from netsim.model.errors import Source
    from netsim.model.node import parse_node
    from netsim.model.nodeview import NodeView

    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"},
                          "spec": {"nodes": [{"name": "n1", "zone": "z1"}, {"name": "n2"}]}}, Source("<test>"))
    host = HostFacts()
    for i, n in enumerate(spec.nodes):
        view = node_view(spec, i, host)
        assert view == NodeView.from_node(parse_node(node_object(spec, i, 0.0, host), Source("<test>")))
        assert view.proxy_key == (n.name, (spec.node_ip(i),), spec.node_pod_cidr(i), "z1" if i == 0 else None)
    source = (ROOT / "agents" / "kube_proxy.py").read_text()
    assert "NodeInfo(" not in source and "NodeView(" not in source  # it builds no view of its own
