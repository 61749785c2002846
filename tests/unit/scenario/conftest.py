"""Fixtures for scenario tests: a scenario directory with a cluster file and manifests, all in tmp_path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.25, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec:
  containers: [{name: c, image: busybox}]
"""

DENY_ALL = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""

CLUSTER = """\
apiVersion: netsim/v1alpha1
kind: Cluster
metadata: {name: qs}
spec:
  nodes: 3
  network: {plugin: calico, backend: vxlan}
  externalHosts: [{name: client, ip: 203.0.113.10}]
"""


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    (tmp_path / "clusters").mkdir()
    (tmp_path / "manifests").mkdir()
    (tmp_path / "clusters" / "three-node-calico.yaml").write_text(CLUSTER)
    (tmp_path / "manifests" / "web.yaml").write_text(WEB)
    (tmp_path / "manifests" / "deny-all.yaml").write_text(DENY_ALL)
    return tmp_path


def write_scenario(directory: Path, steps: str, *, name: str = "quickstart", extra: str = "",
                   cluster: str = "cluster: {file: clusters/three-node-calico.yaml}",
                   manifests: str = "manifests: [{file: manifests/web.yaml}]") -> Path:
    """A scenario file whose `steps:` block is `steps` (YAML list text, any indentation)."""
    body = (f"apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {{name: {name}}}\n{extra}"
            f"{cluster}\n{manifests}\nsteps:\n{textwrap.indent(textwrap.dedent(steps).strip(), '  ')}\n")
    path = directory / f"{name}.yaml"
    path.write_text(body)
    return path
