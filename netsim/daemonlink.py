"""How `netsim.Cluster` reaches the agents that act on its store: the cluster's daemon process, or none.

The front door writes to the store and then waits for someone to act on the write. Who that is is injected
(`Cluster(..., daemon=...)`), so the same methods run against a real cluster and in process:
- `ProcessDaemon`: the cluster's daemon (`python -m netsim.daemon <cluster>`, netsim.daemonctl): its liveness
  is checked before a write, and waits follow the convergence marker it writes.
- `NoDaemon`: nobody but this process. Waits return at once (nothing else would change the store), or,
  with `controllers=True`, after running the controllers and scheduler in process
  (`controlplane.loop.reconcile_once`) until a pass writes nothing, so a Deployment applied in a test
  has its ReplicaSet and Pods. There are no kubelets: pods stay Pending. For unit tests on
  `netsim.kernel.fake.FakeKernel` and `netsim.store.MemoryStore`, and the CLI run in process on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from netsim import daemonctl


class DaemonLink(Protocol):
    """What the front door asks of whoever acts on the store."""

    def require(self) -> None:
        """Raise daemonctl.DaemonDown when nothing would act on a write."""

    def wait_converged(self, after_rv: int, timeout: float) -> dict[str, Any]:
        """Until a quiet pass covered `after_rv` (the convergence marker)."""

    def wait_for(self, after_rv: int, timeout: float, check: Callable[[dict[str, Any]], list[str]]) -> dict[str, Any]:
        """Until a pass covered `after_rv` and `check(marker)` has nothing left to wait for."""

    def restart(self, timeout: float) -> int:
        """Stop and start the daemon; its pid."""

    def alive(self) -> bool:
        """Whether something acts on the store."""


class ProcessDaemon:
    """The cluster's daemon process (netsim.daemonctl), found by the cluster's name."""

    def __init__(self, cluster: str):
        self.cluster = cluster

    def require(self) -> None:
        daemonctl.require(self.cluster)

    def alive(self) -> bool:
        return daemonctl.alive(self.cluster)

    def wait_converged(self, after_rv: int, timeout: float) -> dict[str, Any]:
        return daemonctl.wait_converged(self.cluster, after_rv, timeout)

    def wait_for(self, after_rv: int, timeout: float, check: Callable[[dict[str, Any]], list[str]]) -> dict[str, Any]:
        return daemonctl.wait_for(self.cluster, after_rv, timeout, check)

    def restart(self, timeout: float) -> int:
        return daemonctl.restart(self.cluster, timeout)


MAX_PASSES = 20  # in-process controller passes per wait: a chain Deployment -> ReplicaSet -> Pods needs ~3


class NoDaemon:
    """No daemon: this process is the only writer. `controllers`: run the control plane's passes on
    `store` in process whenever a wait is asked for (see the module docstring)."""

    def __init__(self, store: Any = None, *, controllers: bool = False):
        self.store = store
        self.controllers = controllers
        self.memory: dict[str, Any] = {}  # the controllers' memory between passes, as the daemon keeps it

    def require(self) -> None:
        return None

    def alive(self) -> bool:
        return True

    def _settle(self) -> dict[str, Any]:
        if self.controllers and self.store is not None:
            from netsim.controlplane.loop import RealClock, reconcile_once
            for _ in range(MAX_PASSES):
                rv = self.store.current_rv()
                reconcile_once(self.store, RealClock(), memory=self.memory)
                if self.store.current_rv() == rv:
                    break
        rv = self.store.current_rv() if self.store is not None else 0
        return {"rv": rv, "converged": True, "pending": [], "blockers": []}

    def wait_converged(self, after_rv: int, timeout: float) -> dict[str, Any]:
        return self._settle()

    def wait_for(self, after_rv: int, timeout: float, check: Callable[[dict[str, Any]], list[str]]) -> dict[str, Any]:
        # Nobody else would make what `check` still waits for (pods Ready: no kubelet runs): one look, so
        # a failure it raises is seen, and no waiting.
        marker = self._settle()
        check(marker)
        return marker

    def restart(self, timeout: float) -> int:
        raise daemonctl.DaemonError("this cluster runs without a daemon (in process): nothing to restart")
