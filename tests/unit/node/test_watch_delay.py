"""WatchDelays: an agent hears of a change its own delay after the first change it missed, then acts on the
state of that moment (several changes in between are one sync)."""

from __future__ import annotations

import pytest

from netsim.model.timing import TimingSpec
from netsim.node.watch_delay import WatchDelays


def test_each_watcher_is_due_its_own_delay_after_the_first_change_it_missed():
    w = WatchDelays({"node-1": 0.3, "node-2": 0.5}.__getitem__)
    assert not w.pending() and w.next_due(0.0) is None
    w.changed(["node-1", "node-2"], 10.0)
    w.changed(["node-1"], 10.2)  # a second change while waiting: the first one counts
    assert w.due(10.29) == [] and w.next_due(10.0) == pytest.approx(0.3)
    assert w.due(10.3) == ["node-1"]
    w.seen("node-1")
    assert w.due(10.4) == [] and w.waiting() == ["node-2"]
    assert w.due(10.5) == ["node-2"]
    w.seen("node-2")
    assert not w.pending()


def test_instant_timing_is_due_at_once_and_realistic_differs_per_node():
    w = WatchDelays(TimingSpec().delay_for)
    w.changed(["node-1"], 5.0)
    assert w.due(5.0) == ["node-1"]
    from netsim.model.timing import profile
    real = profile("realistic")
    delays = {real.delay_for(n) for n in ("node-1", "node-2", "node-3", "coredns")}
    assert len(delays) > 1 and all(0.1 <= d <= 0.5 for d in delays)
