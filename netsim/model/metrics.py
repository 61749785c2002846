"""Pod metrics as the resource metrics API (metrics-server) and a custom metrics adapter report them.

Pure data: per pod the CPU (cores) and memory (bytes) of each container, and the requests per second the
pod answered, each a rate over `window` seconds ending at `timestamp`, as metrics-server's PodMetrics carry
`timestamp` and `window`. The daemon's sampler (netsim.node.metrics_sampler) fills a MetricsView once per metric resolution;
the HPA controller and `netsim top` read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ContainerUsage:
    name: str
    cpu: float  # cores
    memory: float  # bytes


@dataclass(frozen=True)
class PodUsage:
    timestamp: float  # epoch seconds at the end of the window
    window: float  # seconds
    containers: tuple[ContainerUsage, ...] = ()
    rps: float = 0.0  # requests answered per second
    node: str | None = None

    @property
    def cpu(self) -> float:
        return sum(c.cpu for c in self.containers)

    @property
    def memory(self) -> float:
        return sum(c.memory for c in self.containers)

    def value(self, what: str, container: str | None = None) -> float:
        """cpu / memory (of one container, or the pod) or rps."""
        if what == "rps":
            return self.rps
        cs = [c for c in self.containers if container is None or c.name == container]
        return sum(c.cpu if what == "cpu" else c.memory for c in cs)

    def to_dict(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "window": self.window, "rps": round(self.rps, 3), "node": self.node,
                "containers": [{"name": c.name, "cpu": round(c.cpu, 6), "memory": int(c.memory)}
                               for c in self.containers]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PodUsage:
        return cls(float(d["timestamp"]), float(d["window"]),
                   tuple(ContainerUsage(c["name"], float(c["cpu"]), float(c["memory"])) for c in d["containers"]),
                   float(d.get("rps", 0.0)), d.get("node"))


@dataclass
class MetricsView:
    """Usage per pod, keyed "namespace/name"."""

    pods: dict[str, PodUsage] = field(default_factory=dict)

    def pod(self, namespace: str, name: str) -> PodUsage | None:
        return self.pods.get(f"{namespace}/{name}")

    @classmethod
    def empty(cls) -> MetricsView:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"pods": {k: v.to_dict() for k, v in sorted(self.pods.items())}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricsView:
        return cls({k: PodUsage.from_dict(v) for k, v in (d.get("pods") or {}).items()})
