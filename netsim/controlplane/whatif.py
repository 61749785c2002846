"""What-ifs: NetworkPolicies enforced for a while on behalf of one client, owned by the daemon.

`netsim verify --diff NEW.yaml` must see NEW.yaml's policies enforced by the kernel, yet must never leave
the live cluster changed: not when it finishes, not when it is killed halfway. Applying the policies as
real objects and deleting them afterwards fails the second promise (a SIGKILL between the two leaves them
in force) and shows them to every other user of the store meanwhile. So a what-if is a store object of
its own kind (`WhatIf`, in kube-system) holding the policies, its owner (pid and the process's start time,
so a recycled pid is not mistaken for the owner) and a lease expiry:

- felix takes the live NetworkPolicies overlaid with every what-if's (a what-if policy replaces the live
  one of the same namespace/name, as applying it would), see `overlay`;
- the daemon deletes, on every pass (and so on its first pass after a restart), each what-if whose owner
  process is gone or whose lease ran out (`reap`); felix then renders the live policies again;
- the client deletes its what-if when it is done, and renews the lease while it works.

Real NetworkPolicy objects are never written, so `netsim get networkpolicy` and the policy model of other
commands keep seeing only the live set.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KIND = "WhatIf"
API_VERSION = "netsim.io/v1alpha1"
NAMESPACE = "kube-system"
DEFAULT_LEASE = 60.0


@dataclass(frozen=True)
class Owner:
    pid: int
    start: int | None  # /proc/<pid>/stat starttime (clock ticks since boot); None if unreadable

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start}


def process_start(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (proc(5)): when the process started, in clock ticks since boot; None
    when there is no such process or it has exited and waits to be reaped (state Z/X: a killed command
    whose parent has not collected it yet is gone as far as its what-if goes). The command name (field 2)
    may hold spaces and parentheses, so fields are counted after the last ')'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def this_process() -> Owner:
    return Owner(os.getpid(), process_start(os.getpid()))


def owner_alive(owner: Mapping[str, Any]) -> bool:
    """Is the process that made a what-if still running (the same process, not a reuse of its pid)?"""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    start = process_start(pid)
    return start is not None and (owner.get("start") is None or start == owner.get("start"))


def make(policies: Sequence[Mapping[str, Any]], owner: Owner, now: float, lease: float = DEFAULT_LEASE,
         description: str = "") -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": f"whatif-{owner.pid}-{secrets.token_hex(3)}", "namespace": NAMESPACE},
            "spec": {"owner": owner.to_dict(), "expires": now + lease, "description": description,
                     "policies": [dict(p) for p in policies]}}


def renew(obj: dict[str, Any], now: float, lease: float) -> dict[str, Any]:
    obj["spec"]["expires"] = now + lease
    return obj


def stale(obj: Mapping[str, Any], now: float, alive: Callable[[Mapping[str, Any]], bool] = owner_alive) -> str | None:
    """Why a what-if must be rolled back now ("owner gone", "lease expired"), or None."""
    spec = obj.get("spec") or {}
    if not alive(spec.get("owner") or {}):
        return f"owner process {(spec.get('owner') or {}).get('pid')} is gone"
    if float(spec.get("expires") or 0) < now:
        return "its lease expired"
    return None


def reap(store: Any, now: float, alive: Callable[[Mapping[str, Any]], bool] = owner_alive) -> list[tuple[str, str]]:
    """Delete every stale what-if; returns (name, why) for each."""
    out = []
    for obj in store.list(KIND, NAMESPACE):
        why = stale(obj, now, alive)
        if why is not None:
            try:
                store.delete(KIND, NAMESPACE, obj["metadata"]["name"])
            except Exception:  # deleted meanwhile by its owner: nothing left to roll back
                continue
            out.append((obj["metadata"]["name"], why))
    return out


def overlay(policies: Iterable[Mapping[str, Any]], whatifs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The live policy dicts with the what-ifs' applied on top, oldest what-if first (by resourceVersion):
    a what-if policy replaces the live one with the same namespace and name."""
    def key(p: Mapping[str, Any]) -> tuple[str, str]:
        md = p.get("metadata") or {}
        return md.get("namespace") or "default", md["name"]

    out = {key(p): dict(p) for p in policies}
    for w in sorted(whatifs, key=lambda w: int((w.get("metadata") or {}).get("resourceVersion") or 0)):
        for p in (w.get("spec") or {}).get("policies") or []:
            out[key(p)] = dict(p)
    return list(out.values())
