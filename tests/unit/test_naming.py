from netsim import naming


def test_names_fit_and_are_prefixed():
    assert naming.node_ns("demo", "node-1") == "netsim-demo-node-node-1"
    assert naming.pod_ns("demo", "default", "web-0") == "netsim-demo-pod-default-web-0"
    assert len(naming.fabric_port_for_node(999)) <= 15


def test_owned_by_tells_prefix_clusters_apart():
    others = ["demo", "demo-2"]
    assert naming.owned_by("demo", "netsim-demo-node-a", others)
    assert not naming.owned_by("demo", "netsim-demo-2-node-a", others)
    assert naming.owned_by("demo-2", "netsim-demo-2-node-a", others)
    assert not naming.owned_by("demo", "netsim-other-node-a", others)
