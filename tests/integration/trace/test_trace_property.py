"""Property: for any flow on any plugin/backend, `netsim trace`'s simulation and the kernel agree - the
verdict, the endpoint, masquerade, tunnel, and whether the answer gets back to the source.

Five small clusters (2 nodes, one per plugin/backend, built once for the module, all alive together) with
the same workload: a client and a server pod on node-1, a server pod on node-2, a NodePort Service over
both servers, an external host on its own subnet and one on the node network. hypothesis draws
(cluster, source, destination): sources are pods, nodes and hosts; destinations pods (served or not),
the Service's cluster IP, a NodePort on either node, node addresses, external hosts. Deterministic
(derandomized), no shrinking: each example is one real trace (~0.1-1 s); a failure prints the flow.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from netsim.api import Cluster
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.trace import hops as H
from netsim.trace.api import trace

pytestmark = [pytest.mark.root, pytest.mark.slow]

EXAMPLES = 25
PLUGINS = [("flannel", "vxlan"), ("flannel", "host-gw"), ("calico", "vxlan"), ("calico", "direct"),
           ("canal", "vxlan")]
EXT, UNDERLAY_HOST = "203.0.113.10", "172.18.0.200"

WORKLOAD = """
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {nodeName: node-1, containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: agnhost, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: c, image: agnhost, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30090}]
"""

SOURCES = ["default/client", "default/web-a", "default/web-b", "node/node-1", "node/node-2", "host/ext",
           "host/near"]
# (destination, protocol); NODE-n stands for that node's IP
DESTINATIONS = [
    ("default/web-a:8080", "TCP"), ("default/web-b:8080", "TCP"), ("default/client:9999", "TCP"),
    ("default/web-b:8080", "UDP"), ("svc/default/web:80", "TCP"), ("NODE-1:30090", "TCP"),
    ("NODE-2:30090", "TCP"), ("NODE-2:22", "TCP"), (f"{EXT}:8000", "TCP"), (f"{UNDERLAY_HOST}:8000", "TCP"),
    (EXT, "ICMP"), ("default/web-b", "ICMP"),
]


def _spec(name: str, plugin: str, backend: str):
    return parse_cluster({
        "apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
        "spec": {"nodes": 2, "network": {"plugin": plugin, "backend": backend},
                 "externalHosts": [{"name": "ext", "ip": EXT}, {"name": "near", "ip": UNDERLAY_HOST}]},
    }, Source("<test>"))


@pytest.fixture(scope="module")
def clusters(kernel):
    """All five at once (built in parallel: most of a build is waiting for its daemon)."""
    names = {f"{p}-{b}": f"tp{secrets.token_hex(3)}" for p, b in PLUGINS}

    def build(key: str) -> Cluster:
        plugin, backend = key.split("-", 1)
        c = Cluster.up(_spec(names[key], plugin, backend), timeout=90)
        c.apply(WORKLOAD)
        return c

    futures = {}
    try:
        with ThreadPoolExecutor(len(names)) as pool:
            futures = {key: pool.submit(build, key) for key in names}
        yield {key: f.result() for key, f in futures.items()}
    finally:
        from netsim import lifecycle

        for f in futures.values():
            if f.done() and f.exception() is None:
                f.result().close()
        for name in names.values():
            lifecycle.down(kernel, name)


def _dest(c: Cluster, text: str) -> str:
    for n in ("1", "2"):
        text = text.replace(f"NODE-{n}", c.state.node(f"node-{n}")["ip"])
    return text


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(which=st.sampled_from([f"{p}-{b}" for p, b in PLUGINS]), src=st.sampled_from(SOURCES),
       dst=st.sampled_from(DESTINATIONS))
def test_simulation_and_kernel_agree_on_every_flow(clusters, which, src, dst):
    c = clusters[which]
    target, protocol = dst
    if target.split(":")[0] == src:
        return  # a pod to itself by its own address: not a flow of interest here
    report = trace(c, src, _dest(c, target), protocol=protocol)
    sim, obs = report.simulated, report.observed
    note(f"{which}: {src} -> {target}/{protocol}")
    note("simulated:\n" + "\n".join(h.text() for h in sim.hops) + f"\n= {sim.verdict} returned={sim.returned}")
    note("observed:\n" + "\n".join(h.text() for h in obs.hops) + f"\n= {obs.verdict} returned={obs.returned}")
    assert report.agree, report.disagreements
    if obs.verdict == H.VERDICT_DELIVERED and protocol in ("TCP", "ICMP"):
        assert obs.returned is not None and sim.returned == obs.returned
