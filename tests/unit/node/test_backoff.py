"""The kubelet's container restart back-off: immediate first restart, then 10 s doubling to 300 s, reset after
10 minutes without a restart (client-go flowcontrol.Backoff as pkg/kubelet sets it up)."""

from __future__ import annotations

from netsim.node.backoff import RestartBackoff


def _restart_delays(b: RestartBackoff, crashes: int, run_for: float = 1.0) -> list[float]:
    """Crash `crashes` times, each after `run_for` seconds of running; the wait before each restart."""
    now, out, key = 0.0, [], ("default/p", "c")
    for _ in range(crashes):
        now += run_for
        finished = now
        wait = b.remaining(key, finished, now)
        out.append(wait)
        now += wait
        assert b.remaining(key, finished, now) == 0
        b.next(key, now)
    return out


def test_first_restart_is_immediate_then_doubles_to_five_minutes():
    assert _restart_delays(RestartBackoff(), 9) == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_time_already_spent_after_the_exit_counts():
    b = RestartBackoff()
    b.next("k", 0.0)
    assert b.remaining("k", finished=5.0, now=5.0) == 10.0
    assert b.remaining("k", finished=5.0, now=12.0) == 3.0


def test_ten_minutes_without_a_restart_resets_the_back_off():
    assert _restart_delays(RestartBackoff(), 4, run_for=601.0) == [0, 0, 0, 0]
    b = RestartBackoff()
    _restart_delays(b, 5)
    b.forget("default/p")
    assert b.current(("default/p", "c")) == 0.0
