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


def test_down_walks_proc_once_for_all_of_a_clusters_namespaces(root, monkeypatch):
    """A walk of /proc per namespace made `down` of 10,000 pods stat every process 10,000 times."""
    from netsim.kernel import netns as netns_mod
    from netsim.kernel.fake import FakeKernel
    names = [naming.pod_ns("big", "default", f"p{i}") for i in range(300)] + [naming.node_ns("big", "node-1")]
    monkeypatch.setattr(lifecycle, "owned_netns", lambda name: names)
    monkeypatch.setattr(netns_mod, "identity", lambda n: (names.index(n), 1) if n in names else None)
    walks = []
    monkeypatch.setattr(netns_mod, "pids_by_netns", lambda: walks.append(1) or {(5, 1): [2 ** 22 + 7]})
    killed = []
    monkeypatch.setattr(lifecycle, "_kill", lambda pids: killed.append(set(pids)) or len(pids))
    k = FakeKernel()
    report = lifecycle.down(k, "big")
    assert len(walks) == 1 and {2 ** 22 + 7} in killed
    assert report.namespaces == 301


def test_down_removes_each_rank_of_namespaces_at_once(root, monkeypatch):
    """Pods in one netns_delete_many (unmounts overlapped), then the nodes, then the fabric: one at a time,
    10,000 pods took most of a 95 s `down`."""
    from netsim.kernel import netns as netns_mod
    from netsim.kernel.fake import FakeKernel
    pods = [naming.pod_ns("big", "default", f"p{i}") for i in range(50)]
    nodes = [naming.node_ns("big", f"node-{i}") for i in range(3)]
    fab = naming.fabric_ns("big")
    monkeypatch.setattr(lifecycle, "owned_netns", lambda name: [fab, *nodes, *pods])
    monkeypatch.setattr(netns_mod, "pids_in_all", lambda names: set())
    k = FakeKernel()
    for n in [fab, *nodes, *pods]:
        k.netns_create(n)
    calls = []
    monkeypatch.setattr(k, "netns_delete_many", lambda names: calls.append(list(names)))
    monkeypatch.setattr(k, "netns_delete", lambda name: calls.append([name]))
    lifecycle.down(k, "big")
    assert [sorted(c) for c in calls] == [sorted(pods), sorted(nodes), [fab]]


def test_down_removes_pod_directories_and_the_state_dir_several_at_a_time(root, monkeypatch, tmp_path):
    """On a loaded ext4 every unlink waits on the journal: 3,000 pods' /etc/netns directories and state
    subtrees took 45 s of a 47 s `down` one after another. With each rmdir made to take 20 ms, 60 pod
    directories and a state dir of 60 subtrees must go in well under the 2.4 s a serial sweep needs."""
    import shutil
    import time

    from netsim.kernel.fake import FakeKernel
    etc = tmp_path / "etc-netns"
    pods = [naming.pod_ns("slow", "default", f"p{i}") for i in range(60)]
    for n in pods:
        (etc / n).mkdir(parents=True)
        (etc / n / "resolv.conf").write_text("nameserver 10.96.0.10\n")
    sd = root / "slow"
    for i in range(60):
        (sd / "logs" / f"p{i}").mkdir(parents=True)
    (sd / "cluster.json").write_text("{}")
    monkeypatch.setattr(lifecycle, "ETC_NETNS", str(etc))
    monkeypatch.setattr(lifecycle, "owned_netns", lambda name: [])
    real_rmdir = os.rmdir

    def slow_rmdir(path, *a, **kw):
        time.sleep(0.02)
        return real_rmdir(path, *a, **kw)
    monkeypatch.setattr(os, "rmdir", slow_rmdir)
    assert shutil.rmtree.avoids_symlink_attacks  # the fd-based rmtree, which calls os.rmdir(name, dir_fd=)
    t0 = time.perf_counter()
    lifecycle.down(FakeKernel(), "slow")
    took = time.perf_counter() - t0
    assert not sd.exists() and not any(etc.iterdir())
    assert took < 1.2, f"down took {took:.2f} s"
