"""When a node's kube-proxy may sync: minSyncPeriod and syncPeriod, as kube-proxy paces syncProxyRules.

kube-proxy's iptables proxier runs syncProxyRules through a BoundedFrequencyRunner
(kubernetes pkg/util/async/bounded_frequency_runner.go; NewProxier in pkg/proxy/iptables/proxier.go
passes minInterval = minSyncPeriod and burstSyncs = 2): a token bucket that refills one token per
minSyncPeriod and holds at most two, so the first two changes after a quiet spell sync at once and later
ones wait for the next token; requests that arrive while waiting are coalesced into that one run. With
minSyncPeriod 0 every change syncs immediately.

syncPeriod drives the periodic check (ipt.Monitor in the same NewProxier): every syncPeriod kube-proxy
checks that its rules are still in the kernel and forces a full sync when they are not. `check_due` says
when that check is next due.

Pure: the caller passes the time (time.monotonic() in the daemon, a number in the tests).
"""

from __future__ import annotations

BURST_SYNCS = 2  # NewProxier's burstSyncs


class SyncRunner:
    def __init__(self, min_sync_period: float, sync_period: float, now: float, *, burst: int = BURST_SYNCS):
        self.min_interval = max(0.0, min_sync_period)
        self.sync_period = sync_period
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now
        self._last_check = now

    def _refill(self, now: float) -> None:
        if self.min_interval <= 0:
            self._tokens = float(self.burst)
        elif now > self._stamp:
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) / self.min_interval)
        self._stamp = max(self._stamp, now)

    def try_run(self, now: float) -> bool:
        """True (and a token spent) when a sync may start now."""
        if self.min_interval <= 0:
            return True
        self._refill(now)
        if self._tokens >= 1.0 - 1e-9:
            self._tokens -= 1.0
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a sync may start (0 when one may start now)."""
        if self.min_interval <= 0:
            return 0.0
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) * self.min_interval)

    def check_due(self, now: float) -> float:
        """Seconds until the periodic rule check is due (0 or less: due)."""
        return self._last_check + self.sync_period - now

    def checked(self, now: float) -> None:
        self._last_check = now
