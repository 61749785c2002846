"""felix's endpoint list (cni_plugins.routed_veth.list_endpoints) with a cache kept between passes: an endpoint
file is written once under its container ID, so a pass reads only the files it has not seen, and forgets
the ones removed."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from cni_plugins.common import write_atomic
from cni_plugins.routed_veth import WorkloadEndpoint, endpoints_dir, list_endpoints


def write(ctx, i: int) -> None:
    ep = WorkloadEndpoint("default", f"p{i}", f"cid{i}", "eth0", f"10.244.0.{i}", f"cali{i}", "a")
    write_atomic(endpoints_dir(ctx) / f"cid{i}.eth0.json", json.dumps(asdict(ep)))


def test_only_new_endpoint_files_are_read(ctx, monkeypatch):
    c = ctx()
    endpoints_dir(c).mkdir(parents=True, exist_ok=True)
    for i in range(1, 51):
        write(c, i)
    reads: list[str] = []
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self.name) or real(self, *a, **k))
    cache: dict = {}
    assert len(list_endpoints(c, cache)) == 50 and len(reads) == 50
    reads.clear()
    assert len(list_endpoints(c, cache)) == 50 and reads == []  # nothing new: nothing read
    write(c, 51)
    (endpoints_dir(c) / "cid3.eth0.json").unlink()
    eps = list_endpoints(c, cache)
    assert reads == ["cid51.eth0.json"] and "p3" not in {e.pod for e in eps} and len(eps) == 50
    assert eps == list_endpoints(c)  # the same as a full read
