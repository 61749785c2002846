"""A cluster on the etcd store: `netsim up --store etcd` runs its own etcd, serves workloads as on SQLite,
and `down` leaves no etcd process nor data, also when the record of the etcd was lost in a crash."""

from __future__ import annotations

import json
import os
import signal

import pytest

from netsim import naming
from netsim.etcd import server
from tests.conftest import run_netsim

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(server.binary() is None,
                                 reason="no etcd binary (Debian package etcd-server; scripts/setup.sh installs it)")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _spec(tmp_path, name: str) -> str:
    path = tmp_path / "cluster.yaml"
    path.write_text(f"apiVersion: netsim/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}}}\n"
                    "spec: {nodes: 2, network: {plugin: flannel, backend: vxlan}}\n")
    return str(path)


def test_up_on_etcd_serves_a_service_and_down_leaves_nothing(tmp_path, cluster_name):
    run_netsim("up", "-f", _spec(tmp_path, cluster_name), "--store", "etcd")
    base = naming.state_dir(cluster_name)
    data_dir = os.path.join(base, "etcd")
    with open(os.path.join(base, "store.json")) as f:
        cfg = json.load(f)
    assert cfg["type"] == "etcd" and cfg["local"] and cfg["prefix"] == f"/netsim/{cluster_name}"
    pids = server.find(data_dir)
    assert len(pids) == 1
    with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
        assert f"netsim-{cluster_name}".encode() in f.read()  # named after its cluster
    status = json.loads(run_netsim("status", "--cluster", cluster_name, "-o", "json").stdout)
    assert status["store"] == {"type": "etcd", "endpoints": cfg["endpoints"], "local": True}

    run_netsim("apply", "--cluster", cluster_name, "-f", os.path.join(ROOT, "scenarios/manifests/web.yaml"))
    # The objects are in etcd, where kube-apiserver would keep them.
    from netsim.etcd.client import Etcd
    etcd = Etcd(cfg["endpoints"])
    _, _, n = etcd.range(f"/netsim/{cluster_name}/registry/services/specs/default/web")
    # The control plane's leader is elected on an etcd lease: the daemon holds the election key.
    _, kvs, _ = etcd.range(f"/netsim/{cluster_name}/netsim-controlplane/leader")
    etcd.close()
    assert n == 1
    assert len(kvs) == 1 and kvs[0].value.decode().endswith(f"_{status['daemonPid']}")
    out = run_netsim("probe", "--cluster", cluster_name, "--from", "default/client", "--to", "svc/default/web",
                     "--count", "6").stdout
    assert "6/6" in out, out

    # etcd and the daemon die: `daemon restart` brings the cluster's etcd back first, on its data.
    st = json.loads(run_netsim("status", "--cluster", cluster_name, "-o", "json", check=False).stdout)
    for pid in (pids[0], st["daemonPid"]):
        os.kill(pid, signal.SIGKILL)
    run_netsim("daemon", "restart", "--cluster", cluster_name)
    assert len(server.find(data_dir)) == 1
    assert "web" in run_netsim("get", "svc", "--cluster", cluster_name).stdout

    run_netsim("down", "--name", cluster_name)
    assert server.find(data_dir) == [] and not os.path.exists(base)


def test_down_finds_the_etcd_whose_record_was_lost(tmp_path, cluster_name):
    """`up` killed after etcd started but before it was recorded: `down` finds it by its data dir."""
    run_netsim("up", "-f", _spec(tmp_path, cluster_name), "--store", "etcd", "--no-daemon")
    base = naming.state_dir(cluster_name)
    data_dir = os.path.join(base, "etcd")
    assert len(server.find(data_dir)) == 1
    os.remove(os.path.join(base, "etcd.json"))
    os.remove(os.path.join(base, "store.json"))
    run_netsim("down", "--name", cluster_name)
    assert server.find(data_dir) == [] and not os.path.exists(base)


def test_a_cluster_on_a_given_etcd_keeps_to_its_prefix_and_down_deletes_it(tmp_path, cluster_name):
    """spec.store.endpoints: an etcd someone else runs. The cluster's keys live under /netsim/<cluster>/,
    keys of others are left alone, and `down` deletes the cluster's (no etcd of its own is started)."""
    from netsim.etcd.client import Etcd, put
    from tests.conftest import private_etcd
    with private_etcd() as rec:
        etcd = Etcd([rec.client_url])
        etcd.txn([], [put("/other/keep", "x"), put(f"/netsim/{cluster_name}/registry/pods/default/stale", "{}")])
        path = tmp_path / "cluster.yaml"
        path.write_text(f"apiVersion: netsim/v1alpha1\nkind: Cluster\nmetadata: {{name: {cluster_name}}}\n"
                        f"spec: {{nodes: 1, store: {{type: etcd, endpoints: ['{rec.client_url}']}}}}\n")
        run_netsim("up", "-f", str(path), "--no-daemon")
        assert server.find(os.path.join(naming.state_dir(cluster_name), "etcd")) == []
        from netsim.storefactory import open_store
        store = open_store(cluster_name)  # what every process of the cluster opens
        store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}})
        store.close()
        prefix = f"/netsim/{cluster_name}/"
        _, kvs, _ = etcd.range(prefix, prefix[:-1] + "0", keys_only=True)
        keys = {kv.key for kv in kvs}
        assert f"{prefix}registry/minions/node-1" in keys and f"{prefix}registry/pods/default/stale" not in keys
        run_netsim("down", "--name", cluster_name)
        assert etcd.range(prefix, prefix[:-1] + "0", count_only=True)[2] == 0
        assert etcd.range("/other/keep")[2] == 1
        etcd.close()
