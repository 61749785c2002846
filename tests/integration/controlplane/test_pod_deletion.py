"""`netsim delete` goes through termination as in Kubernetes: the kubelet tears the sandbox down (CNI DEL,
the netns, its /etc/netns entry, the sockets bound in it) before the pod leaves the store; `delete -f` is
all or nothing."""

from __future__ import annotations

import os

import pytest

from netsim import daemonctl, naming, state
from netsim.controlplane import objects as o
from tests.integration.controlplane.test_controlplane_cluster import (
    deployment,
    netsim,
    running_cluster,
    wait_for,
)
from tests.integration.leaks import HeldNetns, etc_netns, processes_in_netns, sockets_in_netns
from tests.integration.stall import stop_outside_a_write

pytestmark = pytest.mark.root


@pytest.fixture
def cluster(kernel):
    with running_cluster(kernel, 2) as c:
        yield c

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %s, labels: {app: solo}}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "300"], ports: [{containerPort: 8080}]}]
"""


def _assert_gone(c, namespace: str, name: str, held: HeldNetns) -> None:
    netns = naming.pod_ns(c.name, namespace, name)
    daemon = state.load(c.name).extra["daemonPid"]
    try:
        assert not os.path.exists(f"/run/netns/{netns}")
        assert not etc_netns(netns), f"/etc/netns/{netns} leaked"
        assert processes_in_netns(held.inode) == []
        assert sockets_in_netns(daemon, held.inode) == 0, f"the daemon still holds sockets in {netns}'s namespace"
    finally:
        held.close()


def test_delete_pod_tears_the_sandbox_down_and_leaks_nothing(cluster):
    c = cluster
    c.apply(POD % "solo")
    netns = naming.pod_ns(c.name, "default", "solo")
    held = HeldNetns(netns)
    assert etc_netns(netns) and processes_in_netns(held.inode)
    out = netsim(c, "delete", "pod", "solo")
    assert "pod/solo deleted" in out.stdout
    assert c.store.get("Pod", "default", "solo") is None
    _assert_gone(c, "default", "solo", held)

    # A CoreDNS pod: its port 53 sockets are the DNS server's, in the daemon; its replacement serves.
    dns = sorted(o.name(p) for p in c.pods("kube-system") if o.labels(p).get("k8s-app") == "kube-dns")[0]
    dns_held = HeldNetns(naming.pod_ns(c.name, "kube-system", dns))
    daemon = state.load(c.name).extra["daemonPid"]
    assert sockets_in_netns(daemon, dns_held.inode) >= 2
    netsim(c, "delete", "pod", dns, "-n", "kube-system")
    _assert_gone(c, "kube-system", dns, dns_held)
    ready = [p for p in c.pods("kube-system") if o.labels(p).get("k8s-app") == "kube-dns" and o.is_ready(p)]
    assert len(ready) == 2 and dns not in {o.name(p) for p in ready}

    # --grace-period=0 --force: out of the store at once; the kubelet removes the orphan sandbox after.
    c.apply(POD % "forced")
    held = HeldNetns(naming.pod_ns(c.name, "default", "forced"))
    netsim(c, "delete", "pod", "forced", "--grace-period=0", "--force", "--no-wait")
    assert c.store.get("Pod", "default", "forced") is None
    c.wait_converged(30)
    # The kubelet tears the orphan sandbox down after the fact: its netns, then its /etc/netns entry.
    forced = naming.pod_ns(c.name, "default", "forced")
    wait_for(lambda: not os.path.exists(f"/run/netns/{forced}") and not etc_netns(forced), 10,
             what="the orphan sandbox to go")
    _assert_gone(c, "default", "forced", held)


def test_graceful_delete_marks_the_pod_terminating_first(cluster):
    c = cluster
    c.apply(POD % "slow")
    daemon = state.load(c.name).extra["daemonPid"]
    # Stopped, the kubelet cannot act, so the pod must still be in the store, Terminating. Stopped outside a
    # write: a daemon stopped inside one would hold the store's write lock and the delete would fail on it.
    stop_outside_a_write(daemon, c.store.path)
    try:
        netsim(c, "delete", "pod", "slow", "--no-wait")
        pod = c.store.get("Pod", "default", "slow")
        assert pod is not None and o.is_terminating(pod)
        assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
        assert os.path.exists(f"/run/netns/{naming.pod_ns(c.name, 'default', 'slow')}")
    finally:
        os.kill(daemon, 18)  # SIGCONT
    c.wait_converged(30)
    assert c.store.get("Pod", "default", "slow") is None
    assert not etc_netns(naming.pod_ns(c.name, "default", "slow"))
    assert daemonctl.alive(c.name)


def test_delete_file_is_all_or_nothing(cluster, tmp_path):
    c = cluster
    c.apply(deployment("web", 1))
    f = tmp_path / "two.yaml"
    f.write_text(deployment("web", 1) + "---\n" + deployment("ghost", 1))
    r = netsim(c, "delete", "-f", str(f), check=False)
    assert r.returncode == 2, r.stderr
    assert str(f) in r.stderr and "ghost" in r.stderr and "not found" in r.stderr
    assert c.store.get("Deployment", "default", "web") is not None
    assert c.store.get("Service", "default", "web") is not None
    out = netsim(c, "delete", "-f", str(f), "--ignore-not-found")
    assert "deployment/web deleted" in out.stdout
    assert c.store.get("Deployment", "default", "web") is None
    assert not [p for p in c.pods("default") if o.name(p).startswith("web-")]
    web = f"{naming.pod_ns_prefix(c.name)}default{naming.POD_SEP}web-"
    assert not [n for n in os.listdir("/etc/netns") if n.startswith(web)]
