"""Pod usage, sampled as the kubelet's resource analyzer and metrics-server report it.

Once per metric resolution the daemon hands the sampler the running pods, the workload server's request counters and the pids
of container processes; the sampler keeps a short history per pod and turns it into rates over the metric
resolution (metrics-server --metric-resolution, 15 s by default): a pod needs two samples before it has a
metric at all, as metrics-server needs two scrapes.

- **Requests per second**: requests the workload server answered for the pod (TCP identity, HTTP requests,
  gRPC calls, UDP datagrams) over the window.
- **CPU**: a container with a `command` is a real process: its user+system time (/proc/<pid>/stat) over the
  window, in cores. A container played by the workload server has no process of its own, so its CPU is
  emulated: 1m idle plus the pod's requests per second times its cost per request, the annotation
  `netsim.io/cpu-per-request` on the pod (a CPU quantity per request/s, default `1m`), shared among the played
  containers. So 200 requests/s at the default cost is 201m, which against a 100m request is 201 %.
- **Memory**: a process's resident set (/proc/<pid>/statm); for a played container the annotation
  `netsim.io/memory-usage` (default `16Mi`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from netsim.model.metrics import ContainerUsage, MetricsView, PodUsage
from netsim.model.pod import Pod
from netsim.model.quantity import parse_quantity

CPU_PER_REQUEST = "netsim.io/cpu-per-request"
MEMORY_USAGE = "netsim.io/memory-usage"
DEFAULT_CPU_PER_REQUEST = 0.001  # cores per request/s
DEFAULT_MEMORY = 16 * 2**20
IDLE_CPU = 0.001
MIN_SPAN = 0.5  # seconds between the two samples a rate needs, at least
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class PodSample:
    """What the daemon knows of one running pod at a pass."""

    key: str  # ns/name
    node: str | None
    containers: tuple[str, ...]  # every app container, in order
    pids: Mapping[str, int]  # container -> pid, for containers that are real processes
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _History:
    samples: deque[tuple[float, int, dict[str, float]]] = field(default_factory=deque)  # (t, requests, cpu s)


def process_cpu_seconds(pid: int, proc: str = "/proc") -> float | None:
    """utime + stime of a process, in seconds; None when it is gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5), after pid and comm


def process_rss(pid: int, proc: str = "/proc") -> float:
    try:
        with open(f"{proc}/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0.0


def _quantity(annotations: Mapping[str, str], key: str, default: float) -> float:
    raw = annotations.get(key)
    if raw is None:
        return default
    try:
        return float(parse_quantity(raw))
    except ValueError:
        return default


class MetricsSampler:
    def __init__(self, resolution: float = 15.0, proc: str = "/proc"):
        self.resolution = resolution
        self.proc = proc
        self._history: dict[str, _History] = {}
        self.view = MetricsView()

    def sample(self, now: float, pods: Iterable[PodSample], requests: Mapping[str, int]) -> MetricsView:
        seen = set()
        out: dict[str, PodUsage] = {}
        for p in pods:
            seen.add(p.key)
            cpu_s = {c: s for c, pid in p.pids.items() if (s := process_cpu_seconds(pid, self.proc)) is not None}
            hist = self._history.setdefault(p.key, _History())
            hist.samples.append((now, int(requests.get(p.key, 0)), cpu_s))
            while len(hist.samples) > 2 and hist.samples[1][0] <= now - self.resolution:
                hist.samples.popleft()
            t0, r0, c0 = hist.samples[0]
            span = now - t0
            if span < MIN_SPAN:
                continue  # one sample is no rate
            rps = max(0, requests.get(p.key, 0) - r0) / span
            played = [c for c in p.containers if c not in p.pids]
            cost = _quantity(p.annotations, CPU_PER_REQUEST, DEFAULT_CPU_PER_REQUEST)
            memory = _quantity(p.annotations, MEMORY_USAGE, DEFAULT_MEMORY)
            usages = []
            for c in p.containers:
                if c in p.pids:
                    used = (cpu_s.get(c, 0.0) - c0.get(c, cpu_s.get(c, 0.0))) / span
                    usages.append(ContainerUsage(c, max(0.0, used), process_rss(p.pids[c], self.proc)))
                else:
                    usages.append(ContainerUsage(c, IDLE_CPU + rps * cost / max(1, len(played)), memory))
            out[p.key] = PodUsage(now, min(span, self.resolution), tuple(usages), rps, p.node)
        for gone in set(self._history) - seen:
            del self._history[gone]
        self.view = MetricsView(out)
        return self.view


def pod_sample(pod: Pod, pids: Mapping[str, int]) -> PodSample:
    """What is sampled of a typed Pod: its key, node, container names and usage annotations."""
    return PodSample(f"{pod.meta.namespace or 'default'}/{pod.meta.name}", pod.spec.node_name,
                     tuple(c.name for c in pod.spec.containers), dict(pids), dict(pod.meta.annotations))
