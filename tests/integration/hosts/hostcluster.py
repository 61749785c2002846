"""What the emulated-hosts tests share: a 3-host spec (one node per host), an app with a web pod on every
node, the cross-host traffic checks (pods, a Service, NodePorts from outside, NetworkPolicy), and library
scenarios rewritten to run on three hosts."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from netsim import hostnet, naming
from tests.conftest import NETSIM, run_netsim, unique_name

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
    # the cluster's first pods are placed as on one host: every node was registered before the control plane
    # scheduled them (daemonctl.start), whatever host's agent came up first
    coredns = sorted(p["spec"].get("nodeName") or "" for p in c.store.list("Pod", "kube-system")
                     if p["metadata"]["name"].startswith("coredns-"))
    assert coredns == ["node-1", "node-2"], coredns
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


ROOT = Path(__file__).resolve().parents[3]
LIBRARY = ROOT / "scenarios"


def absolute_files(value: Any, base: Path) -> Any:
    """`file:` references made absolute, so the rewritten scenario can live in a temporary directory."""
    if isinstance(value, dict):
        def rel(v: Any) -> Any:
            if isinstance(v, list):
                return [rel(x) for x in v]
            return str(base / v) if isinstance(v, str) and not v.startswith("/") else v
        return {k: rel(v) if k == "file" else absolute_files(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [absolute_files(v, base) for v in value]
    return value


def on_three_hosts(path: Path, out: Path) -> Path:
    doc = yaml.safe_load(path.read_text())
    cluster = doc["cluster"]
    assert "file" not in cluster, "a cluster given by file is not rewritten here"
    if isinstance(cluster.get("nodes", 3), int):
        cluster["nodes"] = 9
    cluster["hosts"] = HOSTS
    target = out / path.name
    target.write_text(yaml.safe_dump(absolute_files(doc, path.parent), sort_keys=False))
    return target

def run_library_scenario_on_three_hosts(scenario: str, tmp_path: Path) -> None:
    """Run scenarios/<scenario>.yaml with its cluster on three hosts and nine nodes; fail with its report."""
    path = on_three_hosts(LIBRARY / f"{scenario}.yaml", tmp_path)
    name = unique_name("th")
    try:
        proc = subprocess.run([*NETSIM, "run", str(path), "--name", name, "-o", "json"], capture_output=True,
                              text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-2000:])
        assert json.loads(proc.stdout)
    finally:
        run_netsim("down", "--name", name, check=False, timeout=120)
