"""Source labels map to the namespace names the cluster layout uses."""

from __future__ import annotations

import pytest

from netsim.model.errors import UsageError
from netsim.probe.sources import source_netns


@pytest.mark.parametrize(("label", "netns"), [
    ("x/a", "netsim-demo.pod.x_a"),
    ("node/n1", "netsim-demo.node.n1"),
    ("host/client", "netsim-demo.host.client"),
])
def test_labels(label, netns):
    assert source_netns("demo", label) == netns


@pytest.mark.parametrize("label", ["", "a", "/a", "x/", "svc/ns/name"])
def test_bad_labels(label):
    with pytest.raises(UsageError):
        source_netns("demo", label)
