"""The part of `netsim.Cluster` the scenario runner uses, as a Protocol, and a scripted fake of it for tests.

The runner acts on a cluster only through `netsim.Cluster` (the front door, docs/architecture.md "Layers"):
`Runner(Cluster)` builds with `Cluster.up(spec)` and then calls the methods of `ScenarioCluster`, whose
signatures are `netsim.Cluster`'s own (tests/unit/scenario/test_runner.py checks that they match).
`FakeCluster` plays both roles (its `up` returns itself), so the runner is tested without root.
Conventions:

- Identities are strings as docs/architecture.md spells them: pods `ns/name`, `node/NAME`, `host/NAME`,
  services `svc/NS/NAME`, VIPs and `IP:PORT` as written. Sources and targets passed in may be wildcards
  (`ns/*`, `*/*`); results always name concrete endpoints.
- Errors that make the call meaningless (no such pod, cluster not up, timeout building) raise an Exception,
  preferably a `netsim.model.errors.NetsimError`; the runner records it as the step's error. An
  expectation not met is not an error: e.g. a probe that does not connect returns `connected: false`.
  `wait_converged` raises a NetsimError (the daemon's DaemonError) when the cluster does not converge.
- The runner may call check methods (probe, dns_lookup, exec, trace_summary) from one thread while one
  mutating call (rollout, scale, kill, node, apply, delete, wait) runs in another (`repeat: {during: ...}`),
  so an implementation must tolerate that pairing.

Probe results (`ProbeResult.to_json()`) are the docs/architecture.md contract plus `outcome`:
`{"from": "x/a", "to": "y/b", "target": "10.244.1.5", "port": 80, "protocol": "TCP", "connected": true,
  "servedBy": "y/b", "clientIP": "10.244.2.3", "ms": 0.4, "outcome": "connected"}`
with `outcome` one of OUTCOMES (`refused`: RST / ICMP port unreachable; `timeout`: nothing came back,
as a NetworkPolicy drop looks; `unreachable`: ICMP host/net unreachable or no route; `error`: the prober
itself failed). `servedBy`/`clientIP` are null when not connected.
"""

from __future__ import annotations

import ipaddress
import itertools
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from netsim.model import targets as sel
from netsim.model.cluster import ClusterSpec
from netsim.model.errors import NetsimError
from netsim.model.selectors import LabelSelector

OUTCOMES = ("connected", "refused", "timeout", "unreachable", "error")


class ProbeResultLike(Protocol):
    def to_json(self) -> dict[str, Any]: ...


@runtime_checkable
class ScenarioCluster(Protocol):
    """The methods of `netsim.Cluster` a scenario calls (see netsim/api.py for what each does)."""

    def down(self, *, kernel: Any = None) -> Any: ...

    def apply(self, manifests: Any, *, wait: bool = True, timeout: float = 120.0,
              namespace: str | None = None) -> list[str]: ...

    def delete(self, kind: str, name: str, namespace: str | None = "default", *, wait: bool = True,
               timeout: float = 120.0, grace_period: int | None = None, force: bool = False) -> None: ...

    def scale(self, kind: str, name: str, replicas: int, namespace: str = "default", *, wait: bool = True,
              timeout: float = 120.0) -> None: ...

    def rollout(self, action: str, name: str, namespace: str = "default", *, image: str | None = None,
                container: str | None = None, env: Sequence[tuple[str, str]] = (),
                to_revision: int | None = None, timeout: float = 60.0) -> dict[str, Any]: ...

    def kill_pods(self, namespace: str, *, name: str | None = None,
                  selector: LabelSelector | None = None) -> list[str]: ...

    def node_fail(self, name: str) -> None: ...

    def node_restore(self, name: str) -> None: ...

    def wait_converged(self, timeout: float = 120.0, applied: Sequence[Mapping[str, Any]] = ()) -> None: ...

    def wait_for(self, kind: str, name: str, namespace: str | None = "default", condition: str = "Ready",
                 timeout: float = 60.0) -> bool: ...

    def probe(self, frm: str = "*/*", to: str = "*/*", ports: Sequence[int] | None = None,
              protocols: Sequence[str] | None = None, *, via: str = "pod", count: int = 1,
              timeout: float = 2.0) -> Sequence[ProbeResultLike]: ...

    def expected_verdicts(self, sources: Sequence[str], targets: Sequence[str], ports: Sequence[int],
                          protocols: Sequence[str]) -> list[dict[str, Any]]: ...

    def explain(self, src: str, dst: str, port: int, protocol: str = "TCP", *, probe: bool = True) -> str: ...

    def trace_summary(self, src: str, dst: str, port: int | None = None,
                      protocol: str = "TCP") -> dict[str, Any]: ...

    def dns_lookup(self, src: str, name: str, qtype: str = "A", server: str | None = None,
                   timeout: float = 2.0) -> dict[str, Any]: ...

    def exec(self, where: str, argv: Sequence[str], *, timeout: float = 30.0) -> subprocess.CompletedProcess: ...

    def load(self, frm: str, to: str, *, port: int | None = None, protocol: str = "TCP",
             rate: float | None = None, duration: float = 10.0, connections: int | None = None,
             timeout: float = 1.0, png: str | None = None, stop: Any = None) -> dict[str, Any]: ...


class ClusterFactory(Protocol):
    """What builds the cluster: `netsim.Cluster` itself (its classmethod `up`), or a FakeCluster."""

    def up(self, spec: ClusterSpec) -> ScenarioCluster: ...


# ------------------------------------------------------------------------------------------------ fake


class FakeProbeResult(dict):
    """A probe result of the fake: the JSON dict itself."""

    def to_json(self) -> dict[str, Any]:
        return dict(self)


class FakeCluster:
    """An in-memory cluster for runner tests: pods, services with backends, and scripted answers.

    Connectivity: every probe connects unless a `deny` rule (src selector, dst selector, port or None)
    matches, or `connect` (a callable returning a bool or a full result dict) says otherwise. Services pick
    backends round robin, or by `weights` (a list of backend names cycled through). `scripted` maps method
    names to a value, a list of values (one per call, the last repeating; to return a list, script a
callable), or a callable taking the method's arguments; an Exception value is raised. Every
    call is recorded in `calls` as (method, args).
    """

    def __init__(self, *, pods: Sequence[str] = (), services: dict[str, Sequence[str]] | None = None,
                 nodes: Sequence[str] = ("node-1", "node-2", "node-3"), hosts: Sequence[str] = ("client",),
                 deny: Sequence[tuple[str, str, int | None]] = (),
                 model_deny: Sequence[tuple[str, str, int | None]] | None = None,
                 connect: Callable[[str, str, int, str, str], bool | dict[str, Any]] | None = None,
                 weights: dict[str, Sequence[str]] | None = None,
                 scripted: dict[str, Any] | None = None, converge: bool = True):
        self.pods = list(pods)
        self.services = {k: list(v) for k, v in (services or {}).items()}
        self.nodes = list(nodes)
        self.hosts = list(hosts)
        self.deny = [(sel.parse_source(s), sel.parse_target(d), p) for s, d, p in deny]
        self.model_deny = self.deny if model_deny is None else \
            [(sel.parse_source(s), sel.parse_target(d), p) for s, d, p in model_deny]
        self.connect = connect
        self.scripted = dict(scripted or {})
        self.converge = converge
        self.calls: list[tuple[str, tuple]] = []
        self.objects: dict[tuple, Any] = {}
        self.failed_nodes: set[str] = set()
        self.is_up = False
        self._rr = {svc: itertools.cycle(backends) for svc, backends in self.services.items() if backends}
        self._weights = {svc: itertools.cycle(seq) for svc, seq in (weights or {}).items()}
        self._lock = threading.Lock()
        self._script_pos: dict[str, int] = {}

    # -- helpers ---------------------------------------------------------------------------------------
    def _record(self, method: str, *args: Any) -> Any:
        with self._lock:
            self.calls.append((method, args))
            if method not in self.scripted:
                return None
            value = self.scripted[method]
            if isinstance(value, list):
                pos = self._script_pos.get(method, 0)
                self._script_pos[method] = pos + 1
                value = value[min(pos, len(value) - 1)]
        if callable(value) and not isinstance(value, type):
            value = value(*args)
        if isinstance(value, BaseException):
            raise value
        return value

    def called(self, method: str) -> list[tuple]:
        return [args for m, args in self.calls if m == method]

    def ip_of(self, ident: str) -> str:
        """Stable fake addresses: pods 10.244.x.y, nodes 172.18.0.x, hosts 203.0.113.x, services 10.96.0.x."""
        if ident.startswith("svc/"):
            return str(ipaddress.IPv4Address("10.96.0.100") + sorted(self.services).index(ident[4:]))
        if ident.startswith("node/"):
            return str(ipaddress.IPv4Address("172.18.0.2") + self.nodes.index(ident[5:]))
        if ident.startswith("host/"):
            return str(ipaddress.IPv4Address("203.0.113.10") + self.hosts.index(ident[5:]))
        if ident in self.pods:
            i = self.pods.index(ident)
            return f"10.244.{i // 200}.{i % 200 + 2}"
        return ident

    def _expand(self, selector: str, *, target: bool = False) -> list[str]:
        s = sel.parse_target(selector) if target else sel.parse_source(selector)
        if s.kind == sel.PODS:
            return [p for p in self.pods if s.matches(p)]
        if s.kind == sel.POD and s.text not in self.pods:
            return []  # like a real prober: a pod that does not exist yields no result
        return [s.text]

    @staticmethod
    def _denied(rules: list, src: str, dst: str, port: int) -> bool:
        return any(s.matches(src) and d.matches(dst) and p in (None, port) for s, d, p in rules)

    # -- lifecycle -------------------------------------------------------------------------------------
    def up(self, spec: ClusterSpec) -> FakeCluster:
        self._record("up", spec)
        self.is_up = True
        return self

    def down(self, *, kernel: Any = None) -> Any:
        self._record("down")
        self.is_up = False

    def apply(self, manifests: Any, *, wait: bool = True, timeout: float = 120.0,
              namespace: str | None = None) -> list[str]:
        objects = list(manifests)
        self._record("apply", objects, wait)
        for o in objects:
            meta = o.get("metadata") or {}
            self.objects[(o.get("kind"), meta.get("namespace", namespace or "default"), meta.get("name"))] = o
        return [f"{str(o.get('kind')).lower()}/{(o.get('metadata') or {}).get('name')} created" for o in objects]

    def delete(self, kind: str, name: str, namespace: str | None = "default", *, wait: bool = True,
               timeout: float = 120.0, grace_period: int | None = None, force: bool = False) -> None:
        self._record("delete", kind, name, namespace, wait)
        self.objects.pop((kind, namespace, name), None)

    def scale(self, kind: str, name: str, replicas: int, namespace: str = "default", *, wait: bool = True,
              timeout: float = 120.0) -> None:
        self._record("scale", kind, name, replicas, namespace, wait)

    def rollout(self, action: str, name: str, namespace: str = "default", *, image: str | None = None,
                container: str | None = None, env: Sequence[tuple[str, str]] = (),
                to_revision: int | None = None, timeout: float = 60.0) -> dict[str, Any]:
        out = self._record("rollout", action, name, namespace, image, to_revision)
        return out if out is not None else {"revision": 2 if action == "update" else 1, "complete": True}

    def kill_pods(self, namespace: str, *, name: str | None = None,
                  selector: LabelSelector | None = None) -> list[str]:
        out = self._record("kill_pods", namespace, name, selector)
        if out is not None:
            return out
        if name:
            return [f"{namespace}/{name}"]
        return [p for p in self.pods if p.startswith(f"{namespace}/")]

    def node_fail(self, name: str) -> None:
        self._record("node_fail", name)
        self.failed_nodes.add(name)

    def node_restore(self, name: str) -> None:
        self._record("node_restore", name)
        self.failed_nodes.discard(name)

    def wait_converged(self, timeout: float = 120.0, applied: Sequence[Mapping[str, Any]] = ()) -> None:
        out = self._record("wait_converged", timeout)
        if not (self.converge if out is None else out):
            raise NetsimError(f"the fake cluster did not converge within {timeout:g}s")

    def wait_for(self, kind: str, name: str, namespace: str | None = "default", condition: str = "Ready",
                 timeout: float = 60.0) -> bool:
        out = self._record("wait_for", kind, name, namespace, condition, timeout)
        return True if out is None else out

    # -- checks ----------------------------------------------------------------------------------------
    def _backend(self, target: str) -> str:
        svc = target[4:] if target.startswith("svc/") else None
        if svc is None:
            return target
        with self._lock:
            if svc in self._weights:
                return next(self._weights[svc])
            if svc in self._rr:
                return next(self._rr[svc])
        return ""

    def _one(self, src: str, tgt: str, port: int, proto: str, via: str) -> dict[str, Any]:
        target_ip = self.ip_of(tgt) if sel.parse_target(tgt).kind != sel.IP_PORT else tgt.split(":")[0]
        base = {"from": src, "to": tgt, "target": target_ip, "port": port, "protocol": proto}
        if self.connect is not None:
            verdict = self.connect(src, tgt, port, proto, via)
            if isinstance(verdict, dict):
                return {**base, **verdict}
            ok = bool(verdict)
        else:
            ok = not self._denied(self.deny, src, tgt, port)
        backend = self._backend(tgt) if ok else ""
        if ok and not backend:
            return {**base, "connected": False, "servedBy": None, "clientIP": None, "ms": 0.1,
                    "outcome": "refused"}
        if not ok:
            return {**base, "connected": False, "servedBy": None, "clientIP": None, "ms": 1000.0,
                    "outcome": "timeout"}
        return {**base, "connected": True, "servedBy": backend, "clientIP": self.ip_of(src), "ms": 0.4,
                "outcome": "connected"}

    def probe(self, frm: str = "*/*", to: str = "*/*", ports: Sequence[int] | None = None,
              protocols: Sequence[str] | None = None, *, via: str = "pod", count: int = 1,
              timeout: float = 2.0) -> list[FakeProbeResult]:
        """As netsim.Cluster.probe: a target `IP:PORT` carries its own port (`ports` is None for it)."""
        out = self._record("probe", frm, to, ports, list(protocols or []), via, count)
        if out is not None:
            return [FakeProbeResult(r) for r in out]
        results = []
        tsel = sel.parse_target(to)
        tports = [tsel.port] if tsel.kind == sel.IP_PORT else list(ports or [])
        for src in self._expand(frm):
            for tgt in self._expand(to, target=True):
                for port in tports:
                    for proto in protocols or ["TCP"]:
                        for _ in range(count):
                            results.append(FakeProbeResult(self._one(src, tgt, port, proto, via)))
        return results

    def expected_verdicts(self, sources: Sequence[str], targets: Sequence[str], ports: Sequence[int],
                          protocols: Sequence[str]) -> list[dict[str, Any]]:
        out = self._record("expected_verdicts", list(sources), list(targets), list(ports), list(protocols))
        if out is not None:
            return out
        return [{"from": src, "to": tgt, "port": port, "protocol": proto,
                 "allowed": not self._denied(self.model_deny, src, tgt, port)}
                for s in sources for src in self._expand(s) for t in targets
                for tgt in self._expand(t, target=True) for port in ports for proto in protocols]

    def explain(self, src: str, dst: str, port: int, protocol: str = "TCP", *, probe: bool = True) -> str:
        out = self._record("explain", src, dst, port, protocol)
        if out is not None:
            return out
        denied = self._denied(self.model_deny, src, dst, port)
        return f"{src} -> {dst}:{port}/{protocol}: {'denied by fake policy' if denied else 'allowed'}"

    def trace_summary(self, src: str, dst: str, port: int | None = None, protocol: str = "TCP") -> dict[str, Any]:
        out = self._record("trace_summary", src, dst, port, protocol)
        if out is not None:
            return out
        denied = self._denied(self.deny, src, dst, port or 0)
        return {"verdict": "dropped" if denied else "delivered", "policy": None, "agree": True,
                "hops": [f"{src} eth0", "node bridge", f"{dst}"]}

    def dns_lookup(self, src: str, name: str, qtype: str = "A", server: str | None = None,
                   timeout: float = 2.0) -> dict[str, Any]:
        out = self._record("dns_lookup", src, name, qtype, server)
        if out is not None:
            return out
        parts = name.rstrip(".").split(".")
        if len(parts) >= 3 and parts[2] == "svc" and f"{parts[1]}/{parts[0]}" in self.services:
            return {"rcode": "NOERROR", "addresses": [self.ip_of(f"svc/{parts[1]}/{parts[0]}")]}
        return {"rcode": "NXDOMAIN", "addresses": []}

    def exec(self, where: str, argv: Sequence[str], *, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Scripted answers are (exit code, stdout, stderr) tuples."""
        out = self._record("exec", where, list(argv))
        code, stdout, stderr = tuple(out) if out is not None else (0, " ".join(argv) + "\n", "")
        return subprocess.CompletedProcess(list(argv), code, stdout, stderr)

    def load(self, frm: str, to: str, *, port: int | None = None, protocol: str = "TCP",
             rate: float | None = None, duration: float = 10.0, connections: int | None = None,
             timeout: float = 1.0, png: str | None = None, stop: Any = None) -> dict[str, Any]:
        """A scripted load report, or one where every request succeeded, spread round robin over the
        target Service's backends (the target itself otherwise), 1 ms each."""
        out = self._record("load", frm, to, port, protocol, rate, duration, connections)
        if out is not None:
            return out
        sent = int(round((rate or 100.0) * duration))
        backends = self.services.get(to[4:], []) if to.startswith("svc/") else [to]
        by_endpoint: dict[str, int] = {}
        for i in range(sent):
            ep = backends[i % len(backends)] if backends else to
            by_endpoint[ep] = by_endpoint.get(ep, 0) + 1
        seconds = max(1, int(duration))
        return {"mode": "closed" if connections else "open", "durationS": duration, "sent": sent, "ok": sent,
                "refused": 0, "timeout": 0, "reset": 0, "error": 0, "rate": sent / duration if duration else 0.0,
                "latencyMs": {"p50": 1.0, "p90": 1.0, "p99": 1.0, "max": 1.0}, "byEndpoint": by_endpoint,
                "errors": {}, "series": [{"second": s, "sent": sent // seconds, "ok": sent // seconds, "refused": 0,
                                          "timeout": 0, "reset": 0, "error": 0, "p50": 1.0, "p99": 1.0}
                                         for s in range(seconds)],
                "target": to, "sources": [frm], "events": []}
