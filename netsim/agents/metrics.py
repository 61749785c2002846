"""metrics-server for the cluster: pod usage sampled once per metric resolution, for the HPA and `netsim top`.

metrics-server scrapes every kubelet once per --metric-resolution (15 s by default), not on every change:
here one pass over the running pods of live nodes that often (process usage from /proc for containers
with a process, the workload server's request counters for played ones: netsim/node/metrics_sampler.py),
written to `metrics.json` for `netsim top`; between samples the last view is handed out unchanged.
Constructed with the store, the cluster's kubelet (which nodes are alive, which processes run) and the
workload server; `sample()` once per pass.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from netsim.agents.podread import typed_pod
from netsim.controlplane import objects as o
from netsim.model.metrics import MetricsView
from netsim.node.metrics_sampler import MetricsSampler, pod_sample
from netsim.store import Store

log = logging.getLogger("netsim.daemon")


class MetricsServer:
    def __init__(self, store: Store, kubelet: Any, request_counts: Callable[[], Any], resolution: float,
                 path: str, *, clock: Callable[[], float] = time.time,
                 pods: Callable[[], Iterable[dict[str, Any]]] | None = None,
                 scraped: Callable[[], Iterable[str]] | None = None):
        self.store = store
        # Where the other hosts' kubelets report (the leader of a cluster on several hosts: each host agent
        # samples its own pods into a file of its own; metrics-server scrapes every node's kubelet).
        self.scraped = scraped or (lambda: ())
        # The pods as the kubelets already hold them (the daemon's pod source, kept from the change log):
        # a kubelet's summary API reports the pods it runs, it does not re-read them from the API server.
        # None: listed from the store.
        self.pods = pods or (lambda: self.store.list("Pod"))
        self.kubelet = kubelet  # node_alive(node), kubelets[node].containers
        self.request_counts = request_counts
        self.sampler = MetricsSampler(resolution)
        self.path = path
        self.clock = clock
        self._sampled_at = 0.0
        self._view = MetricsView()  # this process's sample joined with the scraped ones

    @property
    def view(self) -> MetricsView:
        return self._view

    def sample(self) -> MetricsView:
        """The usage of every running pod, sampled afresh when a metric resolution has passed."""
        now = self.clock()
        if now - self._sampled_at < self.sampler.resolution:
            return self._view
        self._sampled_at = now
        samples = []
        for pod in self.pods():
            typed = typed_pod(self.store.decode, pod)  # the parse cache's, shared with the kubelet
            node = typed.spec.node_name
            if typed.status.phase != "Running" or not node or not self.kubelet.node_alive(node):
                continue
            kubelet = self.kubelet.kubelets.get(node)
            procs = kubelet.containers.get(o.key(pod), {}) if kubelet else {}
            pids = {name: cp.proc.pid for name, cp in procs.items()
                    if cp.proc is not None and cp.exit_code is None}
            samples.append(pod_sample(typed, pids))
        view = self.sampler.sample(now, samples, self.request_counts())
        others = self._scrape(now)
        if others:
            view = MetricsView({**others, **view.pods})
        self._view = view
        tmp = f"{self.path}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump({"time": now, "resolution": self.sampler.resolution, **view.to_dict()}, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("cannot write %s: %s", self.path, exc)
        return view


    def _scrape(self, now: float) -> dict[str, Any]:
        """The pods the other hosts' agents reported within the last three resolutions (an agent that
        stopped reporting drops out, as metrics-server drops a kubelet it cannot scrape)."""
        out: dict[str, Any] = {}
        for path in self.scraped():
            try:
                with open(path) as f:
                    d = json.load(f)
                if now - float(d.get("time") or 0) > 3 * max(self.sampler.resolution, 1.0):
                    continue
                out.update(MetricsView.from_dict(d).pods)
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.debug("cannot read %s: %s", path, exc)
        return out


__all__ = ["MetricsServer"]
