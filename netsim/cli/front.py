"""How the CLI reaches clusters: through `netsim.Cluster` alone, made by a `Front` that tests can replace.

Every verb asks `front()` (click's context object, `CliRunner().invoke(cli, args, obj=InProcessFront(...))`
in tests) for the cluster it acts on, builds and removes clusters through it, and asks it whether the
command needs root. `Front` is the real machine: `netsim.Cluster` on the LinuxKernel and the cluster's own
store and daemon. `InProcessFront` keeps clusters that live in this process on an injected kernel and
stores (`Cluster.up(spec, kernel=..., store=...)`), so the CLI runs in process on
`netsim.kernel.fake.FakeKernel` and `netsim.store.MemoryStore` (tests/unit/cli/).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from netsim import preflight
from netsim.api import Cluster
from netsim.model.errors import UsageError

if TYPE_CHECKING:
    from netsim.api import DownReport


class Front:
    """The real machine: clusters found by name in the state directory, built in the LinuxKernel."""

    in_process = False

    def require_root(self, what: str) -> None:
        preflight.require_root(what)

    def require_tools(self) -> None:
        """The kernel tools a cluster is built with (iproute2, iptables, ipset, ...) are installed."""
        preflight.require_tools()

    def open(self, name: str | None) -> Cluster:
        return Cluster(name)

    def up(self, spec: Any, **kw: Any) -> Cluster:
        return Cluster.up(spec, **kw)

    def revive(self, name: str, timeout: float) -> tuple[Cluster, int] | None:
        return Cluster.revive(name, timeout=timeout)

    def remove(self, name: str) -> DownReport:
        return Cluster.remove(name)

    def remove_all(self) -> list[DownReport]:
        return Cluster.remove_all()

    def known(self) -> list[str]:
        return Cluster.known()


class InProcessFront(Front):
    """Clusters that live in this process: built in `kernel`, each on a store from `new_store()`, the
    controllers run in process on each wait when `controllers` (netsim.daemonlink.NoDaemon). Needs no
    root: nothing outside the process is touched."""

    in_process = True

    def __init__(self, kernel: Any, new_store: Callable[[], Any], *, controllers: bool = True):
        self.kernel = kernel
        self.new_store = new_store
        self.controllers = controllers
        self.clusters: dict[str, Cluster] = {}

    def require_root(self, what: str) -> None:
        return None

    def require_tools(self) -> None:
        return None

    def _prune(self) -> None:
        """Forget clusters removed behind the front's back (the scenario runner's `down`)."""
        for name in [n for n, c in self.clusters.items() if c.state.phase != "ready"]:
            del self.clusters[name]

    def open(self, name: str | None) -> Cluster:
        self._prune()
        if name is not None:
            Cluster.check_name(name)
            if name not in self.clusters:
                raise UsageError(f"no cluster named {name!r} (running: {', '.join(sorted(self.clusters)) or 'none'})")
            return self.clusters[name]
        if not self.clusters:
            raise UsageError("no cluster is running; start one with `netsim up`")
        if len(self.clusters) > 1:
            raise UsageError(f"several clusters are running ({', '.join(sorted(self.clusters))}); choose one "
                             "with --cluster")
        return next(iter(self.clusters.values()))

    def up(self, spec: Any, **kw: Any) -> Cluster:
        self._prune()
        kw.pop("kernel", None)
        kw.pop("store", None)
        daemon = kw.pop("daemon", True)
        c = Cluster.up(spec, kernel=self.kernel, store=self.new_store(), daemon=daemon and self.controllers, **kw)
        if c.name in self.clusters:
            c.down()
            raise UsageError(f"cluster {c.name!r} is already running; use another --name, or "
                             f"`netsim down --name {c.name}` first")
        self.clusters[c.name] = c
        return c

    def revive(self, name: str, timeout: float) -> tuple[Cluster, int] | None:
        return None

    def remove(self, name: str) -> DownReport:
        c = self.clusters.pop(name, None)
        if c is not None:
            return c.down()
        from netsim.api import DownReport  # (netsim.lifecycle's, imported when asked for)
        return DownReport(name, 0, 0, False)

    def remove_all(self) -> list[DownReport]:
        return [self.remove(n) for n in sorted(self.clusters)]

    def known(self) -> list[str]:
        self._prune()
        return sorted(self.clusters)


def front() -> Front:
    """The Front of the running command: click's context object when a caller gave one, else the real one."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(Front) if ctx is not None else None
    return found if found is not None else Front()


@contextlib.contextmanager
def cluster(name: str | None) -> Iterator[Cluster]:
    """The cluster a verb acts on (`--cluster`, or the only running one), released when the verb is done."""
    c = front().open(name)
    try:
        yield c
    finally:
        c.close()


def require_root(what: str) -> None:
    front().require_root(what)
