"""Load-balancing spread of kube-proxy's iptables rules on a running cluster (root).

kube-proxy picks endpoint i of n with `-m statistic --mode random --probability 1/(n-i)` and the last one
unconditionally (proxier.go writeServiceToEndpointRules), so every endpoint is equally likely. N
connections from one client pod are therefore multinomial with equal cells, and Pearson's chi-square
(netsim.scenario.stats) must not reject uniformity at p <= 0.001.

Power: with n=3 and N=300, a balancer that gives one endpoint half the traffic has an expected statistic of
~37.5 against a critical value of 13.8 (dof 2); with n=10 and N=600, one endpoint never chosen gives ~67
against 27.9 (dof 9); the classic bug of writing probability 1/n on every rule (geometric spread) is far
beyond both. A false alarm happens once in a thousand runs.

With sessionAffinity ClientIP all N connections from one client land on one endpoint.
"""

from __future__ import annotations

from collections import Counter

import pytest
from svc_cluster import describe, running_cluster

from netsim.scenario.stats import chi_square_uniform

pytestmark = pytest.mark.root

P_THRESHOLD = 0.001


def _deployment(name: str, replicas: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: web, image: agnhost, ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}-sticky}}
spec:
  selector: {{app: {name}}}
  sessionAffinity: ClientIP
  ports: [{{port: 80, targetPort: 8080}}]
---
"""


CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-1
  containers: [{name: client, image: busybox}]
"""


@pytest.fixture(scope="module")
def cluster():
    with running_cluster("flannel", "vxlan") as c:
        c.apply(_deployment("lb3", 3) + _deployment("lb10", 10) + CLIENT)
        yield c


def _endpoint_pods(c, app: str) -> set[str]:
    return {f"default/{p['metadata']['name']}" for p in c.pods("default")
            if p["metadata"].get("labels", {}).get("app") == app and (p.get("status") or {}).get("podIP")}


@pytest.mark.parametrize(("app", "n"), [("lb3", 300), ("lb10", 600)])
def test_spread_is_uniform(cluster, app, n):
    pods = _endpoint_pods(cluster, app)
    assert len(pods) == int(app[2:])
    res = cluster.probe(frm="default/client", to=f"svc/default/{app}", count=n, timeout=5.0)
    bad = [r for r in res if not r.connected]
    assert not bad, describe(bad[:5])
    counts = Counter(r.served_by for r in res)
    assert set(counts) == pods, f"served by {sorted(counts)}, endpoints {sorted(pods)}"
    test = chi_square_uniform([counts[p] for p in sorted(pods)])
    assert test.p_value > P_THRESHOLD, f"spread {dict(counts)} is not uniform: {test.to_dict()}"


@pytest.mark.parametrize(("app", "n"), [("lb3", 300), ("lb10", 600)])
def test_affinity_sends_everything_to_one_endpoint(cluster, app, n):
    first = cluster.probe(frm="default/client", to=f"svc/default/{app}-sticky")
    assert first[0].connected, describe(first)
    res = cluster.probe(frm="default/client", to=f"svc/default/{app}-sticky", count=n, timeout=5.0)
    bad = [r for r in res if not r.connected]
    assert not bad, describe(bad[:5])
    assert Counter(r.served_by for r in res) == {first[0].served_by: n}


def test_chi_square_rejects_a_skewed_spread():
    """The check above has teeth: the spread a 1/n-on-every-rule bug gives (n=3, N=300) is rejected."""
    skewed = [100, 67, 133]  # 1/3, 2/9, 4/9 of 300
    assert chi_square_uniform(skewed).p_value < P_THRESHOLD
