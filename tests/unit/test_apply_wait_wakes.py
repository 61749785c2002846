"""`netsim apply`'s wait wakes when the daemon rewrites its convergence marker (inotify on the state
directory, netsim/dirwatch.py) instead of reading the marker and /proc every 30 ms while the daemon works on
the same two cores: counted as looks at the marker during a wait, never as time. No root, no daemon: a
thread renames markers into a temporary state directory as the daemon does."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from netsim import daemonctl, naming
from netsim.dirwatch import DirWatch


def write_marker(directory: str, rv: int, **extra) -> None:
    path = os.path.join(directory, "converged.json")
    with open(f"{path}.tmp", "w") as f:
        json.dump({"rv": rv, "converged": True, "pending": [], "blockers": [], **extra}, f)
    os.replace(f"{path}.tmp", path)


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(naming, "STATE_ROOT", str(tmp_path))
    monkeypatch.setattr(daemonctl, "alive", lambda cluster: True)
    d = tmp_path / "wake"
    d.mkdir()
    return str(d)


def counting_reads(monkeypatch) -> list[int]:
    reads: list[int] = []
    real = daemonctl.read_marker

    def read(cluster: str):
        marker = real(cluster)
        reads.append((marker or {}).get("rv", 0))
        return marker
    monkeypatch.setattr(daemonctl, "read_marker", read)
    return reads


def test_the_wait_looks_at_the_marker_when_it_was_rewritten(state_dir, monkeypatch):
    """The daemon's marker says rv 5; the wait wants 7. Other files renamed into the directory (health.json)
    wake it too; a marker for rv 7 ends it. Between them it sleeps (at most LOOK_SECONDS, here raised so that
    only the files can wake it): a handful of looks, where the polling wait read ~20 in the same 0.6 s."""
    write_marker(state_dir, 5)
    reads = counting_reads(monkeypatch)
    monkeypatch.setattr(daemonctl, "LOOK_SECONDS", 30.0)

    def daemon() -> None:
        time.sleep(0.3)
        write_marker(state_dir, 6)
        time.sleep(0.3)
        write_marker(state_dir, 7)
    t = threading.Thread(target=daemon)
    t.start()
    marker = daemonctl.wait_for("wake", 7, 20.0, lambda m: [])
    t.join()
    assert marker["rv"] == 7
    assert reads[0] == 5 and reads[-1] == 7 and len(reads) <= 5, reads


def test_wait_converged_wakes_on_the_marker_too(state_dir, monkeypatch):
    write_marker(state_dir, 1)
    reads = counting_reads(monkeypatch)
    monkeypatch.setattr(daemonctl, "LOOK_SECONDS", 30.0)
    t = threading.Timer(0.3, write_marker, (state_dir, 2))
    t.start()
    assert daemonctl.wait_converged("wake", 2, 20.0)["rv"] == 2
    t.join()
    assert len(reads) <= 4, reads


def test_a_marker_written_before_the_wait_sleeps_is_not_missed(state_dir):
    """The watch is made before the first look: what is renamed in after it wakes the next sleep at once."""
    with DirWatch(state_dir) as watch:
        assert watch.notified
        write_marker(state_dir, 3)
        assert watch.wait(30.0) is True
        assert watch.wait(0.0) is False  # consumed


def test_without_the_directory_the_wait_is_a_sleep(tmp_path):
    watch = DirWatch(str(tmp_path / "absent"))
    assert not watch.notified and watch.wait(0.01) is False
    watch.close()
