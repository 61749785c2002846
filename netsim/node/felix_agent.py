"""felix for one node: program the calico policy state of the node's workload endpoints.

Each sync reads the node's filter table once (so built-in hooks are replaced, never duplicated, and stale
`cali-` chains are removed), loads the ipsets, then the filter payload in one `iptables-restore`, then
destroys ipsets nothing references any more - the order felix itself uses so no rule ever points at a
missing set.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netsim.kernel.api import Kernel
from netsim.model.networkpolicy import NetworkPolicy
from netsim.policy.felix import FelixPayload, SelectorMembers, WorkloadEndpoint, render_node
from netsim.policy.model import NamespaceInfo, PodInfo


@dataclass(frozen=True)
class FelixSyncReport:
    node: str
    endpoints: int
    policies: int
    chains: int
    ipsets: int
    ms: float


class FelixAgent:
    def __init__(self, kernel: Kernel, netns: str, node: str):
        self.kernel = kernel
        self.netns = netns
        self.node = node
        self.last: FelixPayload | None = None

    def sync(self, endpoints: Sequence[WorkloadEndpoint], namespaces: Iterable[NamespaceInfo],
             pods: Iterable[PodInfo], policies: Iterable[NetworkPolicy], *,
             selector_members: SelectorMembers | None = None) -> FelixSyncReport:
        """Program the node: `selector_members` are the selector sets' members from a label index kept
        across syncs (netsim.agents.felix); None: matched against every pod here."""
        t0 = time.perf_counter()
        policies = list(policies)
        current = self.kernel.run(self.netns, ["iptables-save", "-t", "filter"]).stdout
        payload = render_node(endpoints, namespaces, pods, policies, current_filter=current,
                              selector_members=selector_members)
        if payload.ipsets.strip():
            self.kernel.ipset_restore(self.netns, payload.ipsets)
        self.kernel.iptables_restore(self.netns, payload.filter, noflush=True)
        existing = self.kernel.run(self.netns, ["ipset", "list", "-n"]).stdout.split()
        cleanup = payload.ipset_cleanup(existing)
        if cleanup:
            self.kernel.ipset_restore(self.netns, cleanup)
        self.last = payload
        return FelixSyncReport(self.node, len(endpoints), len(policies), len(payload.chains), len(payload.sets),
                               round((time.perf_counter() - t0) * 1000, 2))
