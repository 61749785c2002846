"""Kernel object names: unambiguous across clusters and objects, bounded in length (README, "Names")."""

from __future__ import annotations

import itertools

import pytest

from cni_plugins.flannel import host_veth_name
from netsim import naming
from netsim.policy.felix import workload_iface

LONG_NS = "n" * 63
LONG_POD = ".".join(["p" * 63] * 3) + "." + "q" * 61  # 253 characters, the most a pod name may have


def test_names_fit_and_are_readable_when_short():
    assert naming.fabric_ns("demo") == "netsim-demo.fabric"
    assert naming.node_ns("demo", "node-1") == "netsim-demo.node.node-1"
    assert naming.host_ns("demo", "client") == "netsim-demo.host.client"
    assert naming.pod_ns("demo", "default", "web-0") == "netsim-demo.pod.default_web-0"
    assert len(naming.fabric_port_for_node(999)) <= 15


def test_the_fabric_of_one_cluster_is_never_a_pod_of_another():
    # Pod `fabric` in namespace `default` of cluster `x` once was the fabric of cluster `x-pod-default`.
    assert naming.pod_ns("x", "default", "fabric") != naming.fabric_ns("x-pod-default")
    assert not naming.owned_by("x", naming.fabric_ns("x-pod-default"))
    assert not naming.owned_by("x-pod-default", naming.pod_ns("x", "default", "fabric"))
    assert naming.owned_by("x", naming.pod_ns("x", "default", "fabric"))


def test_pods_whose_dashes_line_up_get_distinct_names():
    assert naming.pod_ns("c", "a-b", "c-d") != naming.pod_ns("c", "a", "b-c-d")
    assert naming.pod_part("a-b", "c-d") != naming.pod_part("a", "b-c-d")


def test_owned_by_tells_prefix_clusters_apart():
    assert naming.owned_by("demo", "netsim-demo.node.a")
    assert not naming.owned_by("demo", "netsim-demo-2.node.a")
    assert naming.owned_by("demo-2", "netsim-demo-2.node.a")
    assert not naming.owned_by("demo", "netsim-other.node.a")
    assert not naming.owned_by("demo", "netsim-demo-node-a")  # the old layout, or anybody's else
    assert not naming.owned_by("demo", "netsim-demo.")


@pytest.mark.parametrize("bad", ["", "Demo", "x.pod", "x_y", "-x", "x-", "a" * 21, "x/y", "../x"])
def test_cluster_names_that_could_blur_the_prefix_are_refused(bad):
    assert not naming.is_cluster_name(bad)
    with pytest.raises(ValueError):
        naming.cluster_prefix(bad)


def test_long_and_invalid_names_are_hashed_and_bounded():
    cluster = "c" * naming.MAX_CLUSTER_NAME
    long_pod = naming.pod_ns(cluster, LONG_NS, LONG_POD)
    assert len(long_pod) <= 96 and naming.parse(long_pod).hashed
    # names an unvalidated API could let through must not be able to forge the separators or paths
    for ns, pod in [("a_b", "c"), ("a", "b_c"), ("a", "../../etc"), ("A", "b"), ("a", "b/c"), ("a/b", "c")]:
        name = naming.pod_ns("x", ns, pod)
        assert "/" not in name and naming.parse(name).hashed and naming.owned_by("x", name)
    assert naming.pod_ns("x", "a_b", "c") != naming.pod_ns("x", "a", "b_c")
    assert naming.pod_ns("x", "a/b", "c") != naming.pod_ns("x", "a", "b/c")
    assert len(naming.node_ns(cluster, "n" * 63)) <= 96


def test_no_two_adversarial_objects_share_a_name():
    clusters = ["x", "x-pod-default", "x-pod", "x-node", "x-fabric", "demo", "demo-2"]
    spaces = ["default", "a", "a-b", "b-c", "pod", "fabric", "node-x", LONG_NS, LONG_NS[:-1]]
    pods = ["fabric", "b-c-d", "c-d", "d", "x", "node-a", "a.b", "a-b.c", LONG_POD, LONG_POD[:-1], "n" * 40]
    names: dict[str, tuple] = {}
    for c in clusters:
        objs = [("fabric",)] + [("node", n) for n in [*spaces, "pod-x", "host"]] \
            + [("host", n) for n in spaces] + [("pod", ns, p) for ns, p in itertools.product(spaces, pods)]
        for obj in objs:
            kind = obj[0]
            name = (naming.fabric_ns(c) if kind == "fabric" else naming.node_ns(c, obj[1]) if kind == "node"
                    else naming.host_ns(c, obj[1]) if kind == "host" else naming.pod_ns(c, obj[1], obj[2]))
            assert name not in names, (c, obj, names.get(name))
            names[name] = (c, *obj)
            assert len(name) <= 96
            parsed = naming.parse(name)
            assert parsed is not None and parsed.cluster == c and parsed.role == kind
            for other in clusters:
                assert naming.owned_by(other, name) == (other == c)


def test_interface_names_fit_and_differ_for_lookalike_pods():
    a, b = workload_iface("a-b", "c-d"), workload_iface("a", "b-c-d")
    assert a != b and len(a) <= 15 and len(b) <= 15
    assert len(host_veth_name("netsim" + "f" * 24, "eth0")) <= 15


def test_pod_files_are_short_and_distinct():
    log = naming.container_log("demo", LONG_NS, LONG_POD, "c" * 63)
    assert len(log.rsplit("/", 1)[1]) < 100
    assert naming.container_log("d", "a-b", "c-d", "x") != naming.container_log("d", "a", "b-c-d", "x")


def test_down_refuses_a_name_that_is_no_cluster_name():
    from netsim import lifecycle
    from netsim.kernel.fake import FakeKernel
    from netsim.model.errors import UsageError
    with pytest.raises(UsageError, match="not a cluster name"):
        lifecycle.down(FakeKernel(), "x.pod")  # would otherwise match cluster x's pods: netsim-x.pod.*
