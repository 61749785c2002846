"""Opening a cluster's store, whichever engine its record names (netsim.etcd.config): the SQLite file in
the state directory by default, etcd when the cluster was made with `spec.store.type: etcd`."""

from __future__ import annotations

import os

from netsim import naming
from netsim.etcd import config
from netsim.store import SQLiteStore, Store

STORE_FILE = "store.db"


def store_path(cluster: str) -> str:
    return os.path.join(naming.state_dir(cluster), STORE_FILE)


def open_store(cluster: str) -> Store:
    cfg = config.read(cluster)
    if cfg and cfg.get("type") == "etcd":
        from netsim.etcd.store import EtcdStore  # its client (http.client, ssl) only for etcd

        return EtcdStore(cfg["endpoints"], cfg["prefix"])
    return SQLiteStore(store_path(cluster))
