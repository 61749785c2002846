"""The cluster's state directory: /run/netsim/<cluster>/.

`cluster.json` records the spec and what was built (phase building -> ready), so `status`, `exec` and
`down` work from any process, and a crashed `up` is recognisable as such. /run is a tmpfs: state never
outlives a reboot, and neither do the namespaces it describes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from netsim import naming
from netsim.model.errors import UsageError


@dataclass
class ClusterState:
    name: str
    phase: str  # building | ready
    spec: dict[str, Any]
    nodes: list[dict[str, Any]] = field(default_factory=list)  # name, ip, podCIDR, netns
    hosts: list[dict[str, Any]] = field(default_factory=list)  # name, ip, netns
    fabric: str = ""
    created: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "phase": self.phase, "spec": self.spec, "nodes": self.nodes,
                "hosts": self.hosts, "fabric": self.fabric, "created": self.created, "pid": self.pid,
                "extra": self.extra}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ClusterState:
        return cls(name=d["name"], phase=d["phase"], spec=d["spec"], nodes=d.get("nodes", []),
                   hosts=d.get("hosts", []), fabric=d.get("fabric", ""), created=d.get("created", 0.0),
                   pid=d.get("pid", 0), extra=d.get("extra", {}))

    def node(self, name: str) -> dict[str, Any] | None:
        return next((n for n in self.nodes if n["name"] == name), None)

    def host(self, name: str) -> dict[str, Any] | None:
        return next((h for h in self.hosts if h["name"] == name), None)


def state_file(cluster: str) -> str:
    return os.path.join(naming.state_dir(cluster), "cluster.json")


def make_private_dir(path: str) -> None:
    """Create `path` (and missing parents) as 0700 directories: a cluster's state is root's alone."""
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        make_private_dir(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask


def open_private(path: str, mode: str = "w"):
    """Open `path` for writing, created 0600 whatever the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode)


def save(state: ClusterState) -> None:
    """Write atomically so a reader never sees half a file."""
    path = state_file(state.name)
    make_private_dir(os.path.dirname(path))
    tmp = f"{path}.tmp.{os.getpid()}"
    with open_private(tmp) as f:
        json.dump(state.to_json(), f, indent=1)
    os.replace(tmp, path)


def load(cluster: str) -> ClusterState | None:
    try:
        with open(state_file(cluster)) as f:
            return ClusterState.from_json(json.load(f))
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def known_clusters() -> list[str]:
    """Clusters with a state directory (ready, building, or left by a crash)."""
    try:
        return sorted(d for d in os.listdir(naming.STATE_ROOT)
                      if os.path.isdir(os.path.join(naming.STATE_ROOT, d)))
    except FileNotFoundError:
        return []


def mounts_under(path: str) -> list[str]:
    """Mount points at or under `path` (deepest first): the tmpfs of `emptyDir: {medium: Memory}` volumes."""
    root = os.path.realpath(path)
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == root or point.startswith(root + "/"):
                    out.append(point)
    except OSError:
        return []
    return sorted(set(out), key=len, reverse=True)


def remove(cluster: str) -> None:
    """The cluster's state directory, after unmounting what its pods' volumes mounted in it (also after a
    crash of the daemon that mounted them)."""
    import subprocess
    for point in mounts_under(naming.state_dir(cluster)):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    # Imported here: its thread pool (concurrent.futures, logging) is not for every reader of the state.
    from netsim import fsclean
    fsclean.rmtree_wide(naming.state_dir(cluster))


# Which cluster a command is about: here, beside the state it reads, so that attaching to a cluster
# (netsim.Cluster(name), every CLI verb) does not import the builders of netsim.lifecycle.
def check_name(cluster: str, flag: str = "--cluster") -> None:
    """A cluster name from the command line: a usage error before it reaches a path or a namespace name."""
    problem = naming.cluster_name_problem(cluster)
    if problem:
        raise UsageError(f"{flag}: {problem}")


def running_clusters() -> list[str]:
    return [c for c in known_clusters() if (s := load(c)) is not None and s.phase == "ready"]


def resolve_cluster(name: str | None) -> ClusterState:
    """The cluster a command is about: the named one, or the only running one."""
    if name:
        check_name(name)
        st = load(name)
        if st is None:
            raise UsageError(f"no cluster named {name!r} (running: {', '.join(running_clusters()) or 'none'})")
        return st
    running = running_clusters()
    if not running:
        raise UsageError("no cluster is running; start one with `netsim up`")
    if len(running) > 1:
        raise UsageError(f"several clusters are running ({', '.join(running)}); choose one with --cluster")
    st = load(running[0])
    assert st is not None
    return st
