"""Which store a cluster uses, recorded in its state directory (`store.json`), and the local etcd's life.

`netsim up` calls `prepare` once the state directory is claimed: for `spec.store.type: etcd` it starts
the cluster's private etcd (netsim.etcd.server) unless endpoints were given, and records
{"type": "etcd", "endpoints": [...], "prefix": "/netsim/<cluster>", "local": bool}. No file means the
SQLite store. `down` calls `teardown`: the private etcd is killed (its data goes with the state dir); on
an etcd given by endpoints the cluster's keys are deleted. Every process that opens the cluster's store
(daemon, CLI verbs, netsim.Cluster) reads the record (netsim.storefactory).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from netsim import naming
from netsim.model.storespec import StoreSpec

# The etcd client and server modules (http.client, ssl, subprocess handling) are imported by the functions
# that talk to etcd: every CLI command reads this record (`read`), most of them on a SQLite store.

CONFIG = "store.json"


def default_prefix(cluster: str) -> str:
    return f"/netsim/{cluster}"


def config_path(cluster: str) -> str:
    return os.path.join(naming.state_dir(cluster), CONFIG)


def read(cluster: str) -> dict[str, Any] | None:
    try:
        with open(config_path(cluster)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _write(cluster: str, cfg: dict[str, Any]) -> None:
    path = config_path(cluster)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)
    os.replace(path + ".tmp", path)


def default_store(spec: StoreSpec) -> StoreSpec:
    """`spec` as given; a spec that names no store (the default) takes NETSIM_STORE=etcd|sqlite from the
    environment, so that a whole test suite can run its clusters on etcd."""
    env = os.environ.get("NETSIM_STORE", "")
    if spec == StoreSpec() and env in ("etcd", "sqlite"):
        return StoreSpec(env)
    return spec


def prepare(cluster: str, spec: StoreSpec) -> dict[str, Any] | None:
    """Get the cluster's store ready before anything writes to it; the record, or None for SQLite."""
    if spec.type != "etcd":
        return None
    from netsim.etcd import client, server

    prefix = default_prefix(cluster)
    if spec.endpoints:
        cfg = {"type": "etcd", "endpoints": list(spec.endpoints), "prefix": prefix, "local": False}
        _write(cluster, cfg)  # first: `down` then cleans the prefix whatever happens next
        etcd = client.Etcd(spec.endpoints, timeout=5.0)
        try:
            etcd.status()
            # A cluster of this name is being created: keys an earlier one left behind are not its own.
            etcd.txn([], [client.delete(prefix + "/", client.prefix_end(prefix + "/"))])
        finally:
            etcd.close()
        return cfg
    base = naming.state_dir(cluster)
    cfg = {"type": "etcd", "endpoints": [], "prefix": prefix, "local": True}
    _write(cluster, cfg)
    rec = server.start(f"netsim-{cluster}", base)
    cfg["endpoints"] = [rec.client_url]
    _write(cluster, cfg)
    return cfg


def ensure_running(cluster: str) -> None:
    """Start the cluster's private etcd again if it died (a restarted daemon needs its store)."""
    cfg = read(cluster)
    if not cfg or not cfg.get("local"):
        return
    from netsim.etcd import server

    base = naming.state_dir(cluster)
    if not server.alive(base):
        server.restart(base)


def teardown(cluster: str) -> int:
    """Remove what the cluster's store left outside its state files; processes killed."""
    from netsim.etcd import client, server

    base = naming.state_dir(cluster)
    killed = server.stop(base)  # also when the record is gone: found by its data dir
    cfg = None
    with contextlib.suppress(OSError, ValueError):
        cfg = read(cluster)
    if cfg and cfg.get("type") == "etcd" and not cfg.get("local") and cfg.get("endpoints"):
        p = str(cfg.get("prefix") or default_prefix(cluster)) + "/"
        with contextlib.suppress(client.EtcdError):
            etcd = client.Etcd(cfg["endpoints"], timeout=5.0)
            try:
                etcd.txn([], [client.delete(p, client.prefix_end(p))])
            finally:
                etcd.close()
    return killed
