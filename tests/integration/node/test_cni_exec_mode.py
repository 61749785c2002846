"""cniMode exec: the kubelet runs the CNI plugin as an executable (env + stdin, inside the node netns)."""

from __future__ import annotations

import pytest

from netsim.api import Cluster
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from tests.conftest import unique_name

pytestmark = pytest.mark.root


@pytest.mark.parametrize("plugin", ["flannel", "calico"])
def test_pods_wired_through_the_exec_path(plugin):
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": unique_name("ex")},
                          "spec": {"nodes": 2, "network": {"plugin": plugin, "cniMode": "exec"}}}, Source("<t>"))
    c = Cluster.up(spec)
    try:
        c.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: x, ports: [{containerPort: 8080}]}]}
""")
        pods = c.pods("default")
        assert len(pods) == 2 and all(p["status"].get("podIP") for p in pods)
        assert {p["spec"]["nodeName"] for p in pods} == {"node-1", "node-2"}
        a, b = (f"default/{p['metadata']['name']}" for p in pods)
        results = c.probe(a, b, [8080])
        assert results and results[0].connected  # across nodes, wired by the executable
        # The executable recorded its attachment where the in-process plugin would.
        events = [e for e in c.store.events_since(0) if e.get("reason") == "SandboxCreated"]
        assert len(events) >= 4  # coredns x2 + web x2
    finally:
        c.down()
