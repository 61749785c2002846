"""The load report: nearest-rank percentiles, per-second series, endpoints, merging, the text summary."""

from __future__ import annotations

import pytest

from netsim.load.report import Outcome, Recorder, percentile, render_text


def test_percentile_is_nearest_rank():
    vals = [float(v) for v in range(1, 11)]
    assert percentile(vals, 50) == 5 and percentile(vals, 90) == 9 and percentile(vals, 99) == 10
    assert percentile(vals, 100) == 10 and percentile([7.0], 1) == 7 and percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(vals, 0)


def test_outcomes_are_counted_in_the_second_they_were_sent():
    rec = Recorder(3.0)
    rec.add(Outcome(0.1, "ok", 2.0, "a/x"))
    rec.add(Outcome(0.9, "ok", 4.0, "a/y"))
    rec.add(Outcome(1.5, "refused"))
    rec.add(Outcome(1.6, "timeout", 1000.0))
    rec.add(Outcome(1.7, "error", error="boom"))
    rep = rec.report(target="t")
    assert (rep["sent"], rep["ok"], rep["refused"], rep["timeout"], rep["reset"], rep["error"]) == (5, 2, 1, 1, 0, 1)
    assert rep["latencyMs"] == {"p50": 2.0, "p90": 4.0, "p99": 4.0, "max": 4.0}
    assert rep["byEndpoint"] == {"a/x": 1, "a/y": 1} and rep["errors"] == {"boom": 1}
    assert [(r["second"], r["sent"], r["ok"]) for r in rep["series"]] == [(0, 2, 2), (1, 3, 0), (2, 0, 0)]
    assert rep["series"][1]["p50"] is None and rep["rate"] == round(5 / 3, 1)
    text = render_text(rep)
    assert "ok 2  refused 1  timeout 1" in text and "1s (3/3)" in text and "1 x boom" in text


def test_merge_adds_everything():
    a, b = Recorder(1.0), Recorder(1.0)
    a.add(Outcome(0.2, "ok", 1.0, "p"))
    b.add(Outcome(0.3, "ok", 3.0, "p"))
    b.add(Outcome(0.4, "reset"))
    a.merge(b)
    rep = a.report()
    assert rep["sent"] == 3 and rep["byEndpoint"] == {"p": 2} and rep["series"][0]["sent"] == 3
    assert rep["latencyMs"]["max"] == 3.0 and rep["reset"] == 1


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError):
        Outcome(0.0, "maybe")
