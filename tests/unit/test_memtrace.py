"""The daemon's opt-in allocation report (netsim.memtrace): off unless asked, and what it writes."""

from __future__ import annotations

import json
import tracemalloc

from netsim import memtrace


def test_off_unless_the_environment_asks(monkeypatch, tmp_path):
    monkeypatch.delenv(memtrace.ENV, raising=False)
    assert memtrace.frames_from_env() == 0 and not memtrace.install(str(tmp_path))
    monkeypatch.setenv(memtrace.ENV, "junk")
    assert memtrace.frames_from_env() == 0
    monkeypatch.setenv(memtrace.ENV, "3")
    assert memtrace.frames_from_env() == 3


def test_the_report_names_the_lines_that_hold_memory():
    was = tracemalloc.is_tracing()
    tracemalloc.start(2)
    try:
        kept = [json.loads('{"metadata": {"name": "x%d"}}' % i) for i in range(2000)]  # noqa: UP031
        text = memtrace.report(tracemalloc.take_snapshot())
    finally:
        if not was:
            tracemalloc.stop()
    assert len(kept) == 2000
    assert text.startswith("# traced now")
    by_line = text.split("## by line\n")[1].split("##")[0].splitlines()
    assert "json/decoder.py" in by_line[0]
    assert "## by traceback" in text and "test_memtrace.py" in text


def test_the_peak_watch_reports_the_heap_when_it_grew():
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start(1)
    try:
        watch = memtrace.PeakWatch()
        assert watch.check() and watch.text.startswith("# traced now")
        watch.size = tracemalloc.get_traced_memory()[0] + 2**20
        assert not watch.check()  # not grown by a fifth since
        kept = [bytearray(1 << 20) for _ in range(4 + watch.size // (1 << 20))]  # well over a fifth more
        assert watch.check() and "test_memtrace.py" in watch.text
        assert len(kept) > 4
    finally:
        if not was:
            tracemalloc.stop()
