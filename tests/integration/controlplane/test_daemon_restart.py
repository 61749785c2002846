"""A dead daemon is reported, refused and restarted: every command that needs it says so (exit 4) and
changes nothing; `netsim up --name N` on the existing cluster restarts it, and its kubelets adopt the
sandboxes they find as restarted kubelets do, finishing or removing the ones half-built when it died."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

import pytest

from netsim import daemonctl, daemonproc, naming, state
from netsim.controlplane import objects as o
from netsim.node.kubelet import CONTAINER_ENV
from tests.conftest import run_netsim
from tests.integration.controlplane.test_controlplane_cluster import netsim, running_cluster, wait_for
from tests.integration.leaks import netns_inode

pytestmark = pytest.mark.root

REPLICAS = 50
WEB = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: x, command: [sleep, "600"], ports: [{{containerPort: 80}}]}}]
"""
OTHER = """
apiVersion: v1
kind: Service
metadata: {name: other}
spec: {selector: {app: web}, ports: [{port: 81, targetPort: 80}]}
"""


def WEB_NETNS(cluster: str) -> str:  # noqa: N802 - reads as the constant it is per cluster
    return f"{naming.pod_ns_prefix(cluster)}default{naming.POD_SEP}web-"


def _container_pids(cluster: str) -> dict[int, str]:
    """Container processes of `cluster` (by the marker in their environment) -> their marker."""
    want = f"{CONTAINER_ENV}={cluster}/".encode()
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(want):
                out[int(entry)] = item.decode().split("=", 1)[1]
    return out


def _ipam_reservations(cluster: str) -> int:
    """Addresses host-local IPAM holds on all nodes (one file per address)."""
    n = 0
    for f in Path(naming.state_dir(cluster), "nodes").glob("*/cni/networks/*/*"):
        try:
            ipaddress.ip_address(f.name)
        except ValueError:
            continue
        n += 1
    return n


def test_daemon_killed_mid_apply_is_refused_then_restarted_and_adopts_everything(kernel, tmp_path):
    # The daemon kills itself inside its 12th sandbox (CoreDNS had 2): the 10th web pod's netns is wired
    # (veth, address reserved) but neither recorded as done nor reported in the pod's status.
    with running_cluster(kernel, 2, env={"NETSIM_TEST_HOOK": "kill:sandbox-wired@12"}) as c:
        pid = state.load(c.name).extra["daemonPid"]
        c.apply(WEB, wait=False)
        wait_for(lambda: not daemonproc.find(c.name), 60, what="the daemon to die in the 12th sandbox")
        with_ip = [p for p in c.pods("default") if (p.get("status") or {}).get("podIP")]
        assert len(with_ip) == 9 and len([n for n in _pod_netns(c.name) if n.startswith(WEB_NETNS(c.name))]) == 10

        # Everything that needs the daemon says so, names the cluster and how to restart, changes nothing.
        r = netsim(c, "status", check=False)
        assert r.returncode == 4 and "DOWN" in r.stdout and f"netsim daemon restart --cluster {c.name}" in r.stdout
        other = tmp_path / "other.yaml"
        other.write_text(OTHER)
        for args in (["apply", "-f", str(other)], ["apply", "-f", str(other), "--no-wait"],
                     ["scale", "deploy/web", "--replicas", "3"], ["delete", "svc", "kubernetes"]):
            r = netsim(c, *args, check=False)
            assert r.returncode == 4, (args, r.stdout, r.stderr)
            assert f"cluster {c.name}: its daemon (pid {pid}) is not running" in r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
        assert c.store.get("Service", "default", "other") is None
        assert c.store.get("Deployment", "default", "web")["spec"]["replicas"] == REPLICAS
        assert c.store.get("Service", "default", "kubernetes") is not None
        victim = next(o.name(p) for p in c.pods("default") if (p.get("status") or {}).get("podIP"))
        inode = netns_inode(naming.pod_ns(c.name, "default", victim))
        r = netsim(c, "kill", "pod", victim, check=False)
        assert r.returncode == 4 and "made a new one" not in r.stdout
        assert netns_inode(naming.pod_ns(c.name, "default", victim)) == inode

        # `up` on the existing cluster restarts its daemon; it converges with every pod Ready.
        r = run_netsim("up", "--name", c.name, "--timeout", "120", timeout=180)
        assert "restarted" in r.stdout
        new_pid = state.load(c.name).extra["daemonPid"]
        assert new_pid != pid and daemonproc.find(c.name) == [new_pid]
        c.wait_converged(120)
        pods = c.pods()
        web = [p for p in pods if o.name(p).startswith("web-")]
        dns = [p for p in pods if o.labels(p).get("k8s-app") == "kube-dns"]
        assert len(web) == REPLICAS and all(o.is_ready(p) and o.phase(p) == "Running" for p in web + dns)
        assert netsim(c, "status").returncode == 0

        # Nothing leaked: one netns, one /etc/netns entry, one sandbox record, one address and one container
        # process per pod, each process inside its pod's namespace.
        expected = {naming.pod_ns(c.name, o.namespace(p), o.name(p)) for p in pods}
        assert set(_pod_netns(c.name)) == expected
        assert {n for n in os.listdir("/etc/netns") if n.startswith(naming.pod_ns_prefix(c.name))} == expected
        records = {f.stem for f in Path(naming.state_dir(c.name), "nodes").glob("*/sandboxes/*.json")}
        assert records == {f"{o.namespace(p)}_{o.name(p)}" for p in pods}
        assert _ipam_reservations(c.name) == len(pods)
        procs = _container_pids(c.name)
        assert sorted(procs.values()) == sorted(f"{c.name}/default/{o.name(p)}/web" for p in web)
        for proc, marker in procs.items():
            pod = marker.split("/")[2]
            assert os.stat(f"/proc/{proc}/ns/net").st_ino == netns_inode(naming.pod_ns(c.name, "default", pod))
        # Adopted pods whose process was restarted count it; the adopted CoreDNS answers.
        assert any(p["status"]["containerStatuses"][0]["restartCount"] >= 1 for p in web)
        any_pod = naming.pod_ns(c.name, "default", o.name(web[0]))
        out = subprocess.run(["ip", "netns", "exec", any_pod, "getent", "hosts", "kubernetes.default"],
                             capture_output=True, text=True, timeout=30)
        assert "10.96.0.1" in out.stdout, out

        # `daemon restart` on a running daemon: adopted again, nothing recreated.
        before = {n: os.stat(f"/run/netns/{n}").st_ino for n in expected}
        netsim(c, "daemon", "restart")
        c.wait_converged(60)
        assert {n: os.stat(f"/run/netns/{n}").st_ino for n in _pod_netns(c.name)} == before
        assert daemonctl.alive(c.name)


def _pod_netns(cluster: str) -> list[str]:
    from netsim.kernel import netns as netns_mod
    return netns_mod.list_names(naming.pod_ns_prefix(cluster))
