"""The one route lookup (netsim.kernel.routes) the packet walkers share: trace's cluster view and the
topology graph pick the same route for the same table."""

from __future__ import annotations

from netsim import topology
from netsim.kernel.api import Route
from netsim.kernel.routes import covers, lookup_route, prefix_len
from netsim.trace.view import NodeView

ROUTES = [Route("default", via="172.18.0.1", dev="eth0"), Route("10.244.0.0/16", dev="a"),
          Route("10.244.1.0/24", dev="flannel.1", onlink=True), Route("10.244.1.0/24", dev="second"),
          Route("not-a-network", dev="junk")]


def test_longest_prefix_first_of_equals_default_last():
    assert lookup_route(ROUTES, "10.244.1.7").dev == "flannel.1"
    assert lookup_route(ROUTES, "10.244.9.9").dev == "a"
    assert lookup_route(ROUTES, "8.8.8.8").dst == "default"
    assert lookup_route(ROUTES[1:], "8.8.8.8") is None


def test_destinations():
    assert prefix_len("default") == 0 and prefix_len("10.0.0.0/8") == 8 and prefix_len("junk") is None
    assert covers("default", "1.2.3.4") and covers("10.0.0.0/8", "10.1.1.1") and not covers("junk", "1.1.1.1")


def test_trace_and_topology_walk_with_the_same_lookup():
    assert topology.lookup_route is lookup_route
    nv = NodeView(name="n", netns="ns", ip="172.18.0.2", routes=ROUTES)
    assert nv.route_for("10.244.1.7") is lookup_route(ROUTES, "10.244.1.7")
