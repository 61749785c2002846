"""The scenario runner's ClusterAPI over a real cluster (netsim.api.Cluster)."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from typing import Any

from netsim import lifecycle
from netsim.api import Cluster
from netsim.controlplane import objects as o
from netsim.controlplane.deletion import Target
from netsim.daemonctl import DaemonError
from netsim.kernel.linux import LinuxKernel
from netsim.model.cluster import ClusterSpec
from netsim.model.selectors import LabelSelector
from netsim.model.targets import IP_PORT, parse_target
from netsim.scenario.steps import ObjectRef

REVISION = "deployment.kubernetes.io/revision"


class LiveClusterAPI:
    """Every ClusterAPI call on a cluster built by `up` (or attached with `attach`)."""

    def __init__(self) -> None:
        self.cluster: Cluster | None = None
        self.name: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def up(self, spec: ClusterSpec) -> None:
        self.name = spec.name
        self.cluster = Cluster.up(spec)

    def attach(self, name: str) -> None:
        self.cluster = Cluster(name)
        self.name = self.cluster.name

    def down(self) -> None:
        if self.cluster is not None:
            self.cluster.down()
            self.cluster = None
        elif self.name:
            k = LinuxKernel()
            try:
                lifecycle.down(k, self.name)
            finally:
                k.close()

    @property
    def c(self) -> Cluster:
        if self.cluster is None:
            raise RuntimeError("the cluster is not up")
        return self.cluster

    # -- changes -------------------------------------------------------------------------------------
    def apply(self, objects: Sequence[Any]) -> None:
        self.c.apply([x.to_dict() if hasattr(x, "to_dict") else x for x in objects], wait=False)

    def delete(self, refs: Sequence[ObjectRef]) -> None:
        self.c.delete_objects([Target(r.kind, r.namespace, r.name) for r in refs], wait=False)

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        self.c.scale(kind, name, replicas, namespace, wait=False)

    def rollout(self, action: str, kind: str, namespace: str, name: str, *, image: str | None = None,
                container: str | None = None, env: Sequence[tuple[str, str]] = (),
                to_revision: int | None = None, timeout: float = 60.0) -> dict[str, Any]:
        if action == "update":
            self.c.set_image(name, image or "", namespace, container, env=dict(env))
            msg = self.c.wait_rollout(name, namespace, timeout)
        elif action == "undo":
            msg = self.c.rollout_undo(name, namespace, to_revision or 0)
            self.c.wait_rollout(name, namespace, timeout)
        else:
            msg = self.c.wait_rollout(name, namespace, timeout)
        d = self.c.store.get("Deployment", namespace, name) or {}
        rev = int(((d.get("metadata") or {}).get("annotations") or {}).get(REVISION, 0))
        return {"revision": rev, "complete": True, "message": msg}

    def kill_pods(self, namespace: str, *, name: str | None = None,
                  selector: LabelSelector | None = None) -> list[str]:
        pods = [p for p in self.c.pods(namespace) if (p.get("status") or {}).get("podIP")]
        if name is not None:
            pods = [p for p in pods if o.name(p) == name]
        elif selector is not None:
            pods = [p for p in pods if selector.matches(o.labels(p))]
        killed = []
        for p in pods:
            self.c.kill_pod(o.name(p), namespace, wait=False)
            killed.append(o.key(p))
        for p in pods:  # then wait for every one of them to be healed
            self.c.wait_healed(o.name(p), namespace)
        return killed

    def node_fail(self, name: str) -> None:
        self.c.node_fail(name)

    def node_restore(self, name: str) -> None:
        self.c.node_restore(name)

    def wait_converged(self, timeout: float) -> bool:
        try:
            self.c.wait_converged(timeout)
            return True
        except DaemonError:
            return False

    def wait_for(self, condition: dict[str, Any], timeout: float) -> bool:
        kind, ns, name = condition["kind"], condition.get("namespace"), condition["name"]
        want = condition.get("condition", "Ready")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            obj = self.c.store.get(kind, None if kind in ("Node", "Namespace") else ns or "default", name)
            if _holds(obj, want):
                return True
            time.sleep(0.05)
        return False

    # -- checks --------------------------------------------------------------------------------------
    def probe(self, sources: Sequence[str], targets: Sequence[str], ports: Sequence[int],
              protocols: Sequence[str], via: str, count: int, timeout: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for s in sources:
            for t in targets:
                own_port = parse_target(t).kind == IP_PORT
                results = self.c.probe(s, t, None if own_port else (list(ports) or None), list(protocols) or None,
                                       via=via, count=count, timeout=timeout)
                out += [r.to_json() for r in results]
        return out

    def expected_verdicts(self, sources: Sequence[str], targets: Sequence[str], ports: Sequence[int],
                          protocols: Sequence[str]) -> list[dict[str, Any]]:
        from netsim.policy.verify import model_from_store
        model = model_from_store(self.c.store)
        by_key = {p.key: p for p in model.pods}
        out = []
        for s in sources:
            for t in targets:
                for src in self.c.sources(s):
                    for dst in self.c.sources(t):
                        if src.label not in by_key or dst.label not in by_key:
                            continue
                        for port in ports:
                            for proto in protocols or ["TCP"]:
                                out.append(model.verdict(by_key[src.label], by_key[dst.label], port, proto).to_dict())
        return out

    def explain(self, src: str, dst: str, port: int, protocol: str) -> str:
        return self.c.explain(src, dst, port, protocol, probe=False)

    def trace(self, src: str, dst: str, port: int | None, protocol: str) -> dict[str, Any]:
        from netsim.trace.api import trace_for_scenario
        return trace_for_scenario(self.c, src, dst, port, protocol)

    def dns(self, src: str, name: str, qtype: str, server: str | None, timeout: float) -> dict[str, Any]:
        """Resolve as the pod's resolver would (search path, ndots:5) by asking the cluster DNS from inside
        the pod's namespace."""
        import dnslib
        ep = self.c.sources(src)[0]
        ns = (ep.pod or {}).get("metadata", {}).get("namespace", "default")
        domain = self.c.spec.dns_domain
        server = server or str(ipaddress.ip_network(self.c.spec.network.service_cidr).network_address + 10)
        fqdn = name.endswith(".")
        search = [] if fqdn or name.count(".") >= 5 else [f"{ns}.svc.{domain}", f"svc.{domain}", domain]
        candidates = [f"{name}.{s}" for s in search] + [name.rstrip(".")]
        last = {"rcode": "SERVFAIL", "addresses": [], "answers": []}
        nxdomain: dict[str, Any] | None = None
        for cand in candidates:
            q = dnslib.DNSRecord.question(cand, qtype)

            def ask(q: dnslib.DNSRecord = q) -> bytes:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.settimeout(timeout)
                try:
                    sock.sendto(q.pack(), (server, 53))
                    return sock.recv(4096)
                finally:
                    sock.close()
            try:
                reply = dnslib.DNSRecord.parse(self.c.kernel.call_in(ep.netns or "", ask))
            except (TimeoutError, OSError) as exc:
                return {"rcode": "TIMEOUT", "addresses": [], "answers": [], "error": str(exc)}
            rcode = dnslib.RCODE.get(reply.header.rcode)
            answers = [{"name": str(rr.rname), "type": dnslib.QTYPE.get(rr.rtype), "data": str(rr.rdata)}
                       for rr in reply.rr]
            last = {"rcode": rcode, "name": cand, "answers": answers,
                    "addresses": [a["data"] for a in answers if a["type"] in ("A", "AAAA")]}
            if rcode == "NOERROR" and answers:
                return last
            if rcode == "NXDOMAIN" and nxdomain is None:
                nxdomain = last
        # As a stub resolver's search reports it: the cluster domain's "no such name" rather than the
        # refusal of the final, out-of-zone attempt.
        return nxdomain or last

    def exec(self, where: str, command: Sequence[str], timeout: float) -> tuple[int, str, str]:
        r = self.c.exec(where, list(command), timeout=timeout)
        return r.returncode, r.stdout, r.stderr


def _holds(obj: dict[str, Any] | None, condition: str) -> bool:
    if condition == "Deleted":
        return obj is None
    if obj is None:
        return False
    status = obj.get("status") or {}
    if condition == "RolledOut" and obj.get("kind") == "Deployment":
        from netsim.controlplane.rollout import rollout_status
        return rollout_status(obj)[1]
    kind = obj.get("kind")
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    if kind in ("Deployment", "StatefulSet", "ReplicaSet") and condition in ("Ready", "Available"):
        key = "availableReplicas" if condition == "Available" and kind == "Deployment" else "readyReplicas"
        return status.get(key, 0) >= replicas
    if kind == "StatefulSet" and condition == "RolledOut":
        return (status.get("readyReplicas", 0) >= replicas
                and status.get("currentRevision") == status.get("updateRevision"))
    if kind == "DaemonSet" and condition in ("Ready", "Available", "RolledOut"):
        desired = status.get("desiredNumberScheduled", 0)
        have = {"Ready": status.get("numberReady", 0), "Available": status.get("numberAvailable", 0),
                "RolledOut": min(status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0))}
        return desired > 0 and have[condition] >= desired
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return conds.get(condition) == "True"
