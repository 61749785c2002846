"""A kubelet stand-in without kernel objects: hands out pod IPs from each node's pod CIDR.

Used by unit tests and by a dry run of the control plane. Readiness and phase are decided by overridable
rules so tests can hold pods not-ready, finish Job pods, or fail a node. It reads the typed Pod (its node)
through a parse cache, as the real kubelet does: the store's (`decode=store.decode`, what the tests'
harness passes) or its own. A `rule` gets the stored pod, as the loop hands it out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane.loop import PodState
from netsim.objcache import ObjectCache


class FakeKubelet:
    def __init__(self, pod_cidrs: dict[str, str] | None = None,
                 decode: Callable[[Mapping[str, Any]], Any] | None = None):
        self.decode = decode or ObjectCache().decode  # stored pod dict -> typed Pod, once per resourceVersion
        self.pod_cidrs = dict(pod_cidrs or {})
        self.failed_nodes: set[str] = set()
        self.sandboxes: dict[str, str] = {}  # "ns/name" -> IP
        self.next_host: dict[str, int] = {}
        self.not_ready: set[str] = set()  # "ns/name" held not ready
        self.rule: Callable[[dict[str, Any]], PodState | None] | None = None  # custom state per pod
        self.created: list[str] = []
        self.deleted: list[str] = []

    def node_alive(self, node: str) -> bool:
        return node not in self.failed_nodes

    def create_sandbox(self, pod: dict[str, Any]) -> str:
        node = self.decode(pod).spec.node_name or ""
        cidr = ipaddress.ip_network(self.pod_cidrs.get(node, "10.244.250.0/24"))
        n = self.next_host.get(node, 2)
        self.next_host[node] = n + 1
        ip = str(cidr.network_address + n)
        self.sandboxes[o.key(pod)] = ip
        self.created.append(o.key(pod))
        return ip

    def delete_sandbox(self, pod: dict[str, Any]) -> None:
        self.sandboxes.pop(o.key(pod), None)
        self.deleted.append(o.key(pod))

    def terminate(self, pod: dict[str, Any]) -> bool:
        """Containers stop at once: nothing runs here."""
        return True

    def pod_state(self, pod: dict[str, Any]) -> PodState:
        if self.rule is not None:
            state = self.rule(pod)
            if state is not None:
                return state
        return PodState(ready=o.key(pod) not in self.not_ready)
