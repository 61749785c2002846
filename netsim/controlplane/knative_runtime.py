"""The daemon's side of Knative Serving: what the controller (netsim.controlplane.knative) cannot read from
the store, and the activator (netsim.node.activator) kept in step with the store.

Before each reconcile pass `before_pass` puts `KnativeInputs` in the controllers' memory: the autoscaler
configuration from the `config-autoscaler` ConfigMap in `knative-serving` (as Knative reads it; a bad one is
reported once as a Warning event and the last good one kept, as Knative's config store does), the activator's
address, the workload server's per-pod request counters and the activator's. After the pass `after_pass`
gives the activator its routes (each Knative Service's activator port, its ready pods, its timeout) and
records the activator's ColdStart events.

Nothing runs and nothing is read while the cluster has no Knative Service (one list per pass).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.admission import Allocators, admit_service
from netsim.controlplane.knative import (
    INPUTS_KEY,
    REVISION_LABEL,
    SERVICE_LABEL,
    KnativeInputs,
    activator_port,
)
from netsim.model.errors import NetsimError
from netsim.model.knative import (
    CONFIG_NAME,
    CONFIG_NAMESPACE,
    DEFAULT_TIMEOUT,
    KIND,
    AutoscalerConfig,
    parse_autoscaler_config,
)
from netsim.node.activator import Activator, Route
from netsim.store import Store

EventFn = Callable[..., None]  # (ref, reason, message, *, actor, ms)


class KnativeRuntime:
    def __init__(self, kernel: Any, spec: Any, netns: str, ip: str, workload: Any):
        self.spec = spec
        self.ip = ip
        self.workload = workload
        self.activator = Activator(kernel, netns, ip)
        self.config = AutoscalerConfig()
        self._config_rv: str | None = None
        self._active = False

    def start(self) -> None:
        self.activator.start()

    def stop(self) -> None:
        self.activator.stop()

    def health(self) -> dict[str, Any]:
        return self.activator.health()

    def _admit(self, svc: dict[str, Any], existing: list[dict[str, Any]]) -> dict[str, Any]:
        return admit_service(svc, None, Allocators(self.spec, existing))

    def _read_config(self, store: Store, event: EventFn) -> None:
        cm = store.get("ConfigMap", CONFIG_NAMESPACE, CONFIG_NAME)
        rv = o.meta(cm).get("resourceVersion") if cm else None
        if rv == self._config_rv:
            return
        self._config_rv = rv
        try:
            self.config = parse_autoscaler_config((cm or {}).get("data"))
        except ValueError as exc:
            event(f"ConfigMap {CONFIG_NAMESPACE}/{CONFIG_NAME}", "InvalidConfig",
                  f"{exc}; the autoscaler keeps its previous configuration", actor="autoscaler/kpa")

    def before_pass(self, store: Store, memory: dict[str, Any], event: EventFn) -> None:
        self._active = bool(store.list(KIND))
        if not self._active:
            memory.pop(INPUTS_KEY, None)
            return
        self._read_config(store, event)
        memory[INPUTS_KEY] = KnativeInputs(
            config=self.config, activator_ip=self.ip, domain=self.spec.dns_domain, admit_service=self._admit,
            pod_counters=self.workload.request_stats(), activator_counters=self.activator.counters(),
            monotonic=time.monotonic())

    def after_pass(self, store: Store, event: EventFn) -> None:
        if not self._active:
            self.activator.sync({})
            return
        routes: dict[int, Route] = {}
        # Services, KnativeServices and pods typed from the store's parse cache (each version parsed once).
        for svc in store.typed_list("Service"):
            port = activator_port(svc)
            name = svc.meta.labels.get(SERVICE_LABEL)
            if port is None or not name:
                continue
            ns = svc.meta.namespace
            try:
                ksvc = store.typed(KIND, ns, name)
            except NetsimError:
                continue
            if ksvc is None:
                continue
            backends = tuple(sorted(
                (p.status.pod_ip, ksvc.port) for p in store.typed_list("Pod", ns, {SERVICE_LABEL: name})
                if REVISION_LABEL in p.meta.labels and ps.ready(p) and not ps.terminating(p) and p.status.pod_ip))
            routes[port] = Route(f"{ns}/{name}", backends, float(ksvc.timeout_seconds or DEFAULT_TIMEOUT))
        self.activator.sync(routes)
        for key, reason, message, ms in self.activator.drain_events():
            event(f"{KIND} {key}", reason, message, actor="activator", ms=ms)
