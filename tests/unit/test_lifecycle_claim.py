"""`up` claims a cluster name with one mkdir: the loser of a race is told another `netsim up` has it; a
cluster name from the command line never reaches a path."""

from __future__ import annotations

import os

import pytest

from netsim import lifecycle, naming, state
from netsim.model.cluster import default_cluster
from netsim.model.errors import UsageError


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setattr(naming, "STATE_ROOT", str(tmp_path))
    monkeypatch.setattr(lifecycle, "owned_netns", lambda name: [])
    return tmp_path


def test_a_name_being_built_by_another_up_is_refused_with_that_reason(root):
    spec = default_cluster("racer")
    os.mkdir(root / "racer")  # the winner has claimed it and not written cluster.json yet
    with pytest.raises(UsageError, match="being created by another `netsim up` right now"):
        lifecycle.up(None, spec)  # type: ignore[arg-type]
    state.save(state.ClusterState(name="racer", phase="building", spec=spec.to_dict(), pid=os.getpid()))
    with pytest.raises(UsageError, match=rf"another `netsim up` right now \(pid {os.getpid()}\)"):
        lifecycle.up(None, spec)  # type: ignore[arg-type]


def test_a_dead_builder_leaves_a_half_built_cluster_and_a_ready_one_is_running(root):
    spec = default_cluster("racer")
    state.save(state.ClusterState(name="racer", phase="building", spec=spec.to_dict(), pid=2 ** 22 + 1))
    with pytest.raises(UsageError, match="left half-built"):
        lifecycle.up(None, spec)  # type: ignore[arg-type]
    state.save(state.ClusterState(name="racer", phase="ready", spec=spec.to_dict()))
    with pytest.raises(UsageError, match="already running"):
        lifecycle.up(None, spec)  # type: ignore[arg-type]


def test_state_files_are_private(root):
    spec = default_cluster("priv")
    state.save(state.ClusterState(name="priv", phase="building", spec=spec.to_dict()))
    assert oct(os.stat(root / "priv").st_mode & 0o777) == "0o700"
    assert oct(os.stat(root / "priv" / "cluster.json").st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../../etc"])
def test_a_cluster_name_that_is_not_one_path_component_never_becomes_a_path(name):
    with pytest.raises(ValueError):
        naming.state_dir(name)
    with pytest.raises(UsageError):
        lifecycle.check_name(name)
