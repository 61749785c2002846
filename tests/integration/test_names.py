"""Kernel names on the real kernel: clusters whose names extend each other and pods whose names line up
stay apart (README, "Names"). Each cluster is removed by name at the end, whatever happened."""

from __future__ import annotations

import json

import pytest

from netsim import lifecycle, naming
from netsim.kernel import netns as netns_mod
from tests.conftest import run_netsim

pytestmark = pytest.mark.root

LONG = ".".join(["l" * 63] * 3) + ".end"  # a 196-character pod name: its sandbox gets a hashed name
PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: a-b}
---
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: v1
kind: Pod
metadata: {name: fabric, namespace: default}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c-d, namespace: a-b}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b-c-d, namespace: a}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: LONG, namespace: a-b}
spec: {containers: [{name: c, image: x}]}
""".replace("LONG", LONG)


def _spec(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"apiVersion: netsim/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}}}\nspec: {{nodes: 1}}\n")
    return str(path)


def test_lookalike_clusters_and_pods_stay_apart(tmp_path, kernel, cluster_name):
    x, other = cluster_name, f"{cluster_name}-pod-default"  # pod default/fabric of x vs the fabric of `other`
    try:
        run_netsim("up", "-f", _spec(tmp_path, other), "--no-daemon")
        theirs = sorted(lifecycle.owned_netns(other))
        assert naming.fabric_ns(other) in theirs and len(theirs) == 2
        run_netsim("up", "-f", _spec(tmp_path, x))
        manifest = tmp_path / "pods.yaml"
        manifest.write_text(PODS)
        run_netsim("apply", "--cluster", x, "-f", str(manifest))
        pods = json.loads(run_netsim("get", "pods", "-A", "--cluster", x, "-o", "json").stdout)
        ips = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p["status"]["podIP"]
               for p in pods["items"]}
        a, b = naming.pod_ns(x, "a-b", "c-d"), naming.pod_ns(x, "a", "b-c-d")
        assert a != b and kernel.netns_exists(a) and kernel.netns_exists(b)
        assert ips["a-b/c-d"] != ips["a/b-c-d"]
        long_ns = naming.pod_ns(x, "a-b", LONG)
        assert naming.parse(long_ns).hashed and kernel.netns_exists(long_ns) and len(long_ns) < 100
        # exec lands in the pod it names
        for target, key in (("a-b/c-d", "a-b/c-d"), ("a/b-c-d", "a/b-c-d"), ("fabric", "default/fabric"),
                            (f"a-b/{LONG}", f"a-b/{LONG}")):
            out = run_netsim("exec", "--cluster", x, target, "--", "ip", "-4", "-o", "addr", "show", "eth0").stdout
            assert f" {ips[key]}/" in out, (target, out)
        # the pod `fabric` of x took nothing from the cluster whose name extends x
        assert sorted(lifecycle.owned_netns(other)) == theirs
        assert all(kernel.netns_exists(n) for n in theirs)
        assert not set(lifecycle.owned_netns(x)) & set(theirs)
        run_netsim("down", "--name", x)
        assert lifecycle.owned_netns(x) == []
        assert sorted(lifecycle.owned_netns(other)) == theirs and all(kernel.netns_exists(n) for n in theirs)
        assert json.loads(run_netsim("status", "--cluster", other, "-o", "json").stdout)["fabric"]["present"]
    finally:
        lifecycle.down(kernel, other)
    assert netns_mod.list_names(naming.cluster_prefix(other)) == []


def test_down_refuses_a_name_that_is_no_cluster_name():
    r = run_netsim("down", "--name", "x.pod", check=False)
    assert r.returncode == 2 and "x.pod" in r.stderr and r.stderr.count("\n") == 1
