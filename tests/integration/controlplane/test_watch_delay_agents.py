"""spec.timing's watch delay reaches felix and the cluster DNS too, not only kube-proxy: for that long after a
write, packets meet the old policy rules and DNS gives the old answers; then the new ones hold."""

from __future__ import annotations

import time

import pytest

from tests.conftest import live_cluster

pytestmark = pytest.mark.root

SPEC = {"nodes": 2, "network": {"plugin": "calico", "backend": "vxlan"},
        "timing": {"profile": "instant", "watchDelay": "2s"}}
APP = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: busybox}]
"""
DENY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
"""
SVC = """
apiVersion: v1
kind: Service
metadata: {name: late}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def connected(c) -> bool:
    return c.probe("default/client", "default/web", [80], timeout=0.5)[0].connected


def test_felix_and_dns_hear_of_changes_a_watch_delay_later(kernel):
    with live_cluster(kernel, "wd", SPEC, manifests=APP) as c:
        assert connected(c)
        written = time.monotonic()
        c.apply(DENY, wait=False)
        c.apply(SVC, wait=False)
        assert connected(c)  # felix has not heard of the policy yet: the old rules
        assert c.dns_lookup("default/client", "late")["rcode"] == "NXDOMAIN"  # nor has the DNS
        assert time.monotonic() - written < 1.5
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and connected(c):
            time.sleep(0.2)
        denied_after = time.monotonic() - written
        assert not connected(c) and denied_after >= 1.9, denied_after
        assert c.dns_lookup("default/client", "late")["rcode"] == "NOERROR"
