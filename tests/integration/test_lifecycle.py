"""up / status / exec / down on the real kernel, the host left untouched, and cleanup after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from netsim import daemonproc, lifecycle, naming
from netsim.kernel import netns as netns_mod
from tests.conftest import NETSIM, run_netsim, unique_name

pytestmark = pytest.mark.root


def _sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout


def _cmdlines() -> dict[int, str]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    out[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                pass
    return out


def host_snapshot() -> dict[str, str]:
    """Everything in the root namespace a careless emulator could change."""
    sysctls = ["net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/ipv4/conf/all/route_localnet",
               "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter", "net/ipv4/conf/all/forwarding"]
    snap = {
        "links": _sh("ip -d -o link show | sed -E 's/ +(qlen|numtxqueues|gso).*//'"),
        "addrs": _sh("ip -o addr show"),
        "routes": _sh("ip route show table all"),
        "rules": _sh("ip rule show"),
        "iptables": _sh("iptables-save | grep -v '^#'"),
        "nft": _sh("nft list ruleset"),
        "ipset": _sh("ipset list -n"),
    }
    for s in sysctls:
        try:
            with open(f"/proc/sys/{s}") as f:
                snap[s] = f.read()
        except FileNotFoundError:
            snap[s] = "<absent>"
    return snap


def test_up_status_exec_down_leaves_the_host_untouched(tmp_path, cluster_name):
    before = host_snapshot()
    spec = tmp_path / "cluster.yaml"
    spec.write_text(f"""
apiVersion: netsim/v1alpha1
kind: Cluster
metadata: {{name: {cluster_name}}}
spec:
  nodes: [{{name: a, labels: {{zone: z1}}}}, {{name: b}}]
  network: {{plugin: calico, backend: direct}}
  externalHosts: [{{name: out, ip: 203.0.113.10}}, {{name: near, ip: 172.18.7.7}}]
""")
    out = run_netsim("up", "-f", str(spec), "-o", "json")
    info = json.loads(out.stdout)
    assert info["phase"] == "ready"
    assert [n["ip"] for n in info["nodes"]] == ["172.18.0.2", "172.18.0.3"]
    assert all(n["present"] for n in info["nodes"] + info["hosts"])

    status = json.loads(run_netsim("status", "--cluster", cluster_name, "-o", "json").stdout)
    assert status["plugin"] == "calico" and status["nodes"][0]["labels"] == {"zone": "z1"}
    text = run_netsim("status", "--cluster", cluster_name).stdout
    assert naming.node_ns(cluster_name, "a") in text

    # Node sysctls a Kubernetes node has, inside the node only.
    sysctl = run_netsim("exec", "--cluster", cluster_name, "--node", "a", "--", "sysctl", "-n",
                        "net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables",
                        "net.ipv4.conf.all.route_localnet").stdout.split()
    assert sysctl == ["1", "1", "1"]
    # The node network works: node to node on the underlay, routed host to node, bridged host to node.
    run_netsim("exec", "--cluster", cluster_name, "node/a", "--", "ping", "-c1", "-W2", "172.18.0.3")
    run_netsim("exec", "--cluster", cluster_name, "host/out", "--", "ping", "-c1", "-W2", "172.18.0.2")
    run_netsim("exec", "--cluster", cluster_name, "host/near", "--", "ping", "-c1", "-W2", "172.18.0.3")
    route = run_netsim("exec", "--cluster", cluster_name, "--node", "b", "--", "ip", "route").stdout
    assert "default via 172.18.0.1 dev eth0" in route
    # exec passes the command's exit code through.
    failed = run_netsim("exec", "--cluster", cluster_name, "--node", "a", "--", "false", check=False)
    assert failed.returncode == 1

    # A second `up` of the same name is refused without touching the running cluster.
    again = run_netsim("up", "-f", str(spec), check=False)
    assert again.returncode == 2 and "already running" in again.stderr

    # The cluster's pods (CoreDNS) had resolv.conf files under /etc/netns; make one look orphaned too.
    orphan = f"/etc/netns/{naming.pod_ns(cluster_name, 'default', 'gone')}"
    os.makedirs(orphan, exist_ok=True)
    run_netsim("down", "--name", cluster_name)
    assert lifecycle.owned_netns(cluster_name) == []
    assert not os.path.exists(naming.state_dir(cluster_name))
    assert [n for n in os.listdir("/etc/netns") if n.startswith(naming.cluster_prefix(cluster_name))] == []
    assert host_snapshot() == before


@pytest.mark.serial
def test_sigkill_part_way_then_down_leaves_nothing(tmp_path, kernel):
    name = unique_name("k")
    spec = tmp_path / "big.yaml"
    spec.write_text(f"apiVersion: netsim/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}}}\nspec: {{nodes: 250}}\n")
    proc = subprocess.Popen([*NETSIM, "up", "-f", str(spec)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(netns_mod.list_names(naming.cluster_prefix(name))) < 30 and time.monotonic() < deadline:
            assert proc.poll() is None, "up finished before it could be killed; make the cluster larger"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert netns_mod.list_names(naming.cluster_prefix(name)), "nothing was built before the kill"
        assert os.path.isdir(naming.state_dir(name))
        # A half-built cluster is recognised as such.
        again = run_netsim("up", "-f", str(spec), check=False)
        assert again.returncode == 2 and "half-built" in again.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        # `down --all` is what a user runs after a crash; it removes every netsim cluster on the machine,
        # so outside CI (where a developer may have clusters running) the test names its own.
        run_netsim("down", *(["--all"] if os.environ.get("CI") else ["--name", name]))
    assert netns_mod.list_names(naming.cluster_prefix(name)) == []
    assert not os.path.exists(naming.state_dir(name))
    with open("/proc/self/mountinfo") as f:
        assert naming.cluster_prefix(name) not in f.read()
    assert _sh(f"ip -o link show | grep -c {name} || true").strip() == "0"
    assert [pid for pid, cmd in _cmdlines().items() if str(spec) in cmd] == []  # one snapshot: pids come and go


def test_down_finds_namespaces_without_state_and_kills_their_processes(kernel):
    name = unique_name("s")
    stray = naming.node_ns(name, "lost")
    kernel.netns_create(stray)
    sleeper = kernel.spawn(stray, ["sleep", "300"])
    try:
        out = run_netsim("down", "--name", name, "-o", "json")
        report = json.loads(out.stdout)[0]
        assert report["namespaces"] == 1 and report["processes"] == 1
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
        assert not kernel.netns_exists(stray)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        kernel.netns_delete(stray)


def test_failed_up_builds_nothing(tmp_path, cluster_name, kernel):
    # The name is free, the spec is valid, but a namespace of that cluster already exists: refused up front.
    kernel.netns_create(naming.node_ns(cluster_name, "node-1"))
    r = run_netsim("up", "--name", cluster_name, check=False)
    assert r.returncode == 2 and "remain" in r.stderr
    assert not os.path.exists(naming.state_dir(cluster_name))


UP_WINDOWS = ["up-claimed", "up-nodes-built", "up-ready", "daemon-spawned", "daemon-recorded"]


def _leftovers(name: str) -> dict[str, object]:
    return {"netns": lifecycle.owned_netns(name), "state": os.path.exists(naming.state_dir(name)),
            "etc": [n for n in os.listdir("/etc/netns") if n.startswith(naming.cluster_prefix(name))]
            if os.path.isdir("/etc/netns") else [],
            "daemons": daemonproc.find(name)}


@pytest.mark.parametrize("window", UP_WINDOWS)
def test_up_killed_in_any_window_then_down_leaves_nothing(tmp_path, kernel, window):
    """SIGKILL `netsim up` at each step (a test hook kills it there): `down` finds everything, the daemon
    included (recorded or not), and nothing comes back after it; the name can be used again."""
    name = unique_name("w")
    spec = tmp_path / "c.yaml"
    spec.write_text(f"apiVersion: netsim/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}}}\nspec: {{nodes: 1}}\n")
    try:
        r = subprocess.run([*NETSIM, "up", "-f", str(spec)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "NETSIM_TEST_HOOK": f"kill:{window}"})
        assert r.returncode == -signal.SIGKILL, r.stderr
        if window.startswith("daemon-"):
            assert daemonproc.find(name), "the daemon should be running on its own"
        if window == "up-ready":
            # Built, daemon never started: status says so (exit 4); `up` of the same name starts it.
            s = run_netsim("status", "--cluster", name, check=False)
            assert s.returncode == 4 and "never started" in s.stdout
            run_netsim("up", "--name", name)
            assert run_netsim("status", "--cluster", name).returncode == 0
        run_netsim("down", "--name", name)
        assert _leftovers(name) == {"netns": [], "state": False, "etc": [], "daemons": []}
        time.sleep(1.5)  # a daemon left running would write its state dir again within a pass
        assert _leftovers(name) == {"netns": [], "state": False, "etc": [], "daemons": []}
        if window == "daemon-spawned":
            run_netsim("up", "-f", str(spec))
            run_netsim("down", "--name", name)
    finally:
        lifecycle.down(kernel, name)


def test_the_underlay_neighbours_are_permanent(tmp_path, cluster_name, kernel):
    """The kernel's neighbour table is shared by every namespace and dynamic entries count against its
    gc_thresh3 (1024): 100 nodes talking to each other would learn ~9,900 underlay entries and overflow
    it. Nodes know each other's eth0 as PERMANENT entries instead (exempt from that count), and traffic
    between nodes learns nothing new."""
    spec = tmp_path / "cluster.yaml"
    spec.write_text(f"""
apiVersion: netsim/v1alpha1
kind: Cluster
metadata: {{name: {cluster_name}}}
spec:
  nodes: 3
  externalHosts: [{{name: near, ip: 172.18.0.200}}]
""")
    run_netsim("up", "-f", str(spec), "-o", "json")
    st = json.loads(run_netsim("status", "--cluster", cluster_name, "-o", "json").stdout)
    nodes = {n["name"]: n for n in st["nodes"]}
    macs = {n["ip"]: kernel.link_get(naming.node_ns(cluster_name, name), naming.UPLINK).mac
            for name, n in nodes.items()}
    macs["172.18.0.200"] = kernel.link_get(naming.host_ns(cluster_name, "near"), naming.UPLINK).mac
    for name, n in nodes.items():
        ns = naming.node_ns(cluster_name, name)
        entries = {x.ip: x for x in kernel.neighs(ns, naming.UPLINK)}
        for ip, mac in macs.items():
            if ip != n["ip"]:
                assert entries[ip].permanent and entries[ip].mac.lower() == mac.lower(), (name, ip)
    # node to node traffic (ping every other node) adds no dynamic entry
    ns1 = naming.node_ns(cluster_name, "node-1")
    for n in nodes.values():
        subprocess.run(["ip", "netns", "exec", ns1, "ping", "-c1", "-W1", n["ip"]], capture_output=True)
    assert [x.ip for x in kernel.neighs(ns1, naming.UPLINK) if not x.permanent] == []
