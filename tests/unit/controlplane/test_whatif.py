"""What-ifs (`verify --diff`): owned by a live process, rolled back when it dies or its lease runs out."""

from __future__ import annotations

import os
import subprocess
import sys

from netsim.controlplane import whatif
from netsim.policy.verify import inputs_from_store
from netsim.store import MemoryStore


def _np(name: str, namespace: str = "default", **spec) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], **spec}}


def test_owner_is_this_process_and_a_dead_or_recycled_pid_is_not() -> None:
    me = whatif.this_process()
    assert me.pid == os.getpid() and me.start is not None
    assert whatif.owner_alive(me.to_dict())
    assert not whatif.owner_alive({"pid": me.pid, "start": me.start + 1})  # same pid, another process
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert whatif.process_start(child.pid) is None
    assert not whatif.owner_alive({"pid": child.pid, "start": None})
    child.wait()
    assert not whatif.owner_alive({"pid": child.pid, "start": None})
    assert not whatif.owner_alive({})


def test_reap_removes_what_ifs_of_dead_owners_and_expired_leases() -> None:
    s = MemoryStore()
    alive = {1: True, 2: False, 3: True}
    for pid in alive:
        s.create(whatif.make([_np(f"p{pid}")], whatif.Owner(pid, 7), now=100.0, lease=10.0 if pid != 3 else 1.0))
    got = whatif.reap(s, 105.0, alive=lambda o: alive.get(o.get("pid"), False))
    assert sorted(why for _, why in got) == ["its lease expired", "owner process 2 is gone"]
    left = s.list(whatif.KIND, whatif.NAMESPACE)
    assert [w["spec"]["owner"]["pid"] for w in left] == [1]
    assert whatif.reap(s, 105.0, alive=lambda o: True) == []


def test_felix_sees_the_overlay_and_nobody_else_sees_a_policy_object() -> None:
    s = MemoryStore()
    s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    s.create(_np("live"))
    s.create(_np("same", ingress=[{}]))
    s.create(whatif.make([_np("same"), _np("new")], whatif.this_process(), now=0.0))
    assert sorted(p["metadata"]["name"] for p in s.list("NetworkPolicy")) == ["live", "same"]
    _, _, live = inputs_from_store(s)
    _, _, felix = inputs_from_store(s, with_whatifs=True)
    assert sorted(p.name for p in live) == ["live", "same"]
    assert sorted(p.name for p in felix) == ["live", "new", "same"]
    assert next(p for p in felix if p.name == "same").ingress == ()  # the what-if replaced the live one
