"""The watch delivery delay of an agent (spec.timing watchDelay/watchJitter): an agent hears of a change only
so long after it was written, then acts on whatever the state is by then.

Real node agents (kube-proxy, calico's felix, CoreDNS's kubernetes plugin) learn of API changes through
informers: a watch event reaches each of them some time after the write (apiserver fan-out, network, the
informer's queue), and each node at its own moment. `WatchDelays` keeps, per watcher (a node's felix, the
cluster DNS), when it first missed the current state; it is due once its own delay (`TimingSpec.delay_for`,
fixed per name) has passed since then. With `instant` timing every delay is 0: due at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class WatchDelays:
    def __init__(self, delay_for: Callable[[str], float]):
        self.delay_for = delay_for
        self._since: dict[str, float] = {}  # watcher -> when it first missed the current state

    def changed(self, watchers: Iterable[str], now: float) -> None:
        """A change happened at `now` that these watchers have not seen yet."""
        for w in watchers:
            self._since.setdefault(w, now)

    def due(self, now: float) -> list[str]:
        """The watchers that have heard of what they missed by `now`."""
        return sorted(w for w, t in self._since.items() if now >= t + self.delay_for(w))

    def seen(self, watcher: str) -> None:
        """The watcher acted on the state it heard of."""
        self._since.pop(watcher, None)

    def pending(self) -> bool:
        return bool(self._since)

    def waiting(self) -> list[str]:
        """Every watcher that has not acted on the current state yet."""
        return sorted(self._since)

    def next_due(self, now: float) -> float | None:
        """Seconds until the next watcher is due (None: nobody waits)."""
        if not self._since:
            return None
        return max(0.0, min(t + self.delay_for(w) for w, t in self._since.items()) - now)
