"""spec.timing: the two profiles, overrides, per-node delays, refusals that name the field."""

from __future__ import annotations

import pytest

from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source, SpecError


def cluster(timing):
    return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "t"},
                          "spec": {"nodes": 3, "timing": timing}}, Source("c.yaml"))


def test_profiles_and_overrides():
    inst = cluster("instant").timing
    assert (inst.watch_delay, inst.kubelet_drain_pass, inst.node_monitor_grace_period) == (0.0, True, 10.0)
    real = cluster("realistic").timing
    assert (real.kube_proxy_min_sync_period, real.kubelet_drain_pass, real.node_monitor_grace_period,
            real.pod_eviction_timeout) == (1.0, False, 40.0, 300.0)
    custom = cluster({"profile": "realistic", "watchDelay": "1s", "watchJitter": "0s", "nodeMonitorGracePeriod": "5s"})
    assert custom.timing.delay_for("node-1") == 1.0 and custom.timing.node_monitor_grace_period == 5.0
    assert custom.to_dict()["spec"]["timing"] == {"profile": "realistic", "watchDelay": "1s", "watchJitter": "0s",
                                                  "nodeMonitorGracePeriod": "5s"}
    assert "timing" not in cluster("instant").to_dict()["spec"]


def test_every_node_has_its_own_fixed_delay_within_the_jitter():
    t = cluster("realistic").timing
    delays = {n: t.delay_for(n) for n in ("node-1", "node-2", "node-3")}
    assert all(0.1 <= d <= 0.5 for d in delays.values()) and len(set(delays.values())) == 3
    assert delays == {n: t.delay_for(n) for n in delays}


@pytest.mark.parametrize("timing,field", [("slow", "spec.timing"), ({"profile": "fast"}, "spec.timing.profile"),
                                          ({"watchDelay": "soon"}, "spec.timing.watchDelay"),
                                          ({"watchDelay": 5}, "spec.timing.watchDelay"),
                                          ({"colour": "red"}, "spec.timing.colour")])
def test_bad_timing_names_the_field(timing, field):
    with pytest.raises(SpecError) as err:
        cluster(timing)
    assert err.value.field == field
