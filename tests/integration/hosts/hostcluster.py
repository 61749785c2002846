"""What the emulated-hosts tests share: a 3-host spec (one node per host), an app with a web pod on every
node, and the cross-host traffic checks (pods, a Service, NodePorts from outside, NetworkPolicy)."""

from __future__ import annotations

import json
import time

from netsim import hostnet, naming

HOSTS = [{"name": "ha", "address": "192.168.77.11/24"}, {"name": "hb", "address": "192.168.77.12"},
         {"name": "hc", "address": "192.168.77.13"}]

APP = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, nodePort: 30080}]
---
apiVersion: v1
kind: Pod
metadata: {name: friend, labels: {role: friend}}
spec:
  nodeName: node-2
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: stranger}
spec:
  nodeName: node-3
  containers: [{name: c, image: busybox}]
"""

POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-friends}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {role: friend}}}]}]
"""


def spec(plugin: str, backend: str) -> dict:
    return {"nodes": 3, "hosts": HOSTS, "network": {"plugin": plugin, "backend": backend},
            "externalHosts": [{"name": "client", "ip": "203.0.113.10"}]}


def vxlan_tx(k, ns: str) -> int:
    out = k.run(ns, ["ip", "-j", "-s", "link", "show", hostnet.UNDERLAY_VXLAN]).stdout
    return int(json.loads(out)[0]["stats64"]["tx"]["packets"])


def web_pods(c) -> dict[str, str]:
    """node -> name of the web pod on it."""
    return {p["spec"]["nodeName"]: p["metadata"]["name"] for p in c.store.list("Pod", "default")
            if p["metadata"]["name"].startswith("web-")}


def probe_web(c, frm: str, **kw) -> list:
    """`frm` to the web pod of every node (one on each host)."""
    return [r for pod in web_pods(c).values() for r in c.probe(frm, f"default/{pod}", [80], **kw)]


def check_traffic(c, *, policy: bool) -> None:
    k = c.kernel
    machines = [naming.machine_ns(c.name, h["name"]) for h in HOSTS]
    before = [vxlan_tx(k, ns) for ns in machines]
    web = web_pods(c)
    assert sorted(web) == ["node-1", "node-2", "node-3"]
    # pod to pod across hosts, both ways, and every web pod from every other host
    for frm in ("default/friend", "default/stranger"):
        res = probe_web(c, frm)
        assert len(res) == 3 and all(r.connected for r in res), [(r.probe.target, r.outcome) for r in res]
    # a Service and NodePorts on every node (of every host) from a client outside the cluster
    assert all(r.connected for r in c.probe("default/stranger", "svc/default/web", count=3))
    for i in range(3):
        res = c.probe("host/client", f"{c.spec.node_ip(i)}:30080", count=2)
        assert res and all(r.connected for r in res), (i, [(r.outcome, r.error) for r in res])
    after = [vxlan_tx(k, ns) for ns in machines]
    assert all(a > b for a, b in zip(after, before, strict=True)), ("every host sent over the hosts' VXLAN",
                                                                    before, after)
    if policy:
        c.apply(POLICY)
        deadline = time.monotonic() + 30
        while True:
            friend = probe_web(c, "default/friend", timeout=1)
            stranger = probe_web(c, "default/stranger", timeout=1)
            if all(r.connected for r in friend) and not any(r.connected for r in stranger):
                break
            assert time.monotonic() < deadline, ([r.outcome for r in friend], [r.outcome for r in stranger])
            time.sleep(0.5)
