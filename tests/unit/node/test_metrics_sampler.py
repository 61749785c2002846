"""The usage sampler: rates over the resolution window, emulated CPU per request, real /proc processes."""

from __future__ import annotations

import os

import pytest

from netsim.model.autoscaling import AutoscalingSpec, parse_autoscaling
from netsim.model.errors import Source, SpecError
from netsim.model.meta import Fields
from netsim.node.metrics_sampler import MetricsSampler, PodSample, process_cpu_seconds


def test_a_rate_needs_two_samples_and_covers_the_resolution_window():
    s = MetricsSampler(resolution=2.0)
    pod = PodSample("default/web", "node-1", ("web",), {}, {"netsim.io/cpu-per-request": "10m"})
    assert s.sample(100.0, [pod], {"default/web": 0}).pod("default", "web") is None  # one scrape: no rate
    v = s.sample(101.0, [pod], {"default/web": 50})
    u = v.pod("default", "web")
    assert u is not None and u.rps == 50.0 and u.window == 1.0 and u.node == "node-1"
    assert u.cpu == pytest.approx(0.001 + 50 * 0.010) and u.memory == 16 * 2**20
    s.sample(102.0, [pod], {"default/web": 150})
    u = s.sample(103.0, [pod], {"default/web": 150}).pod("default", "web")
    assert u.rps == pytest.approx(50.0) and u.window == 2.0  # 101 -> 103: (150 - 50) / 2
    assert s.sample(104.0, [], {}).pods == {}  # a pod that is gone is forgotten


def test_a_real_process_is_measured_and_played_containers_share_the_cost():
    s = MetricsSampler(resolution=5.0)
    pod = PodSample("default/mixed", None, ("app", "side"), {"app": os.getpid()}, {"netsim.io/memory-usage": "32Mi"})
    s.sample(0.0, [pod], {"default/mixed": 0})
    sum(i * i for i in range(300000))  # burn some CPU in this very process
    u = s.sample(1.0, [pod], {"default/mixed": 20}).pod("default", "mixed")
    app, side = u.containers
    assert app.name == "app" and app.cpu >= 0 and app.memory > 0  # /proc/<pid>/stat and statm
    assert side.cpu == pytest.approx(0.001 + 20 * 0.001) and side.memory == 32 * 2**20
    assert process_cpu_seconds(os.getpid()) > 0 and process_cpu_seconds(2**22 + 7) is None


def test_the_autoscaling_spec_parses_go_durations_and_refuses_nonsense():
    def parse(d):
        return parse_autoscaling(Fields(d, source=Source("c.yaml"), obj="Cluster c", path="spec.autoscaling"))
    a = parse({"syncPeriod": "1s", "downscaleStabilization": "0s", "metricResolution": "500ms", "tolerance": 0.05})
    assert (a.sync_period, a.downscale_stabilization, a.metric_resolution, a.tolerance) == (1.0, 0.0, 0.5, 0.05)
    assert a.to_dict() == {"syncPeriod": "1s", "downscaleStabilization": "0s", "metricResolution": "0.5s",
                           "tolerance": 0.05}
    assert AutoscalingSpec().to_dict() == {}
    for bad, where in (({"syncPeriod": "0s"}, "syncPeriod"), ({"syncPeriod": 15}, "syncPeriod"),
                       ({"tolerance": 1.5}, "tolerance"), ({"colour": "red"}, "colour")):
        with pytest.raises(SpecError) as err:
            parse(bad)
        assert err.value.field == f"spec.autoscaling.{where}"
