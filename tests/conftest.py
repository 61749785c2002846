"""Shared fixtures. Root tests build real namespaces and always clean up, also when they fail."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys

import pytest

IS_ROOT = os.geteuid() == 0
# The installed `netsim` command: its entry point, which hands a command to the cluster's warm CLI process
# when there is one (netsim.cli.thin).
NETSIM = [sys.executable, "-m", "netsim.cli.thin"]


def pytest_configure(config: pytest.Config) -> None:
    """Every cluster a test brings up merges its context into `$KUBECONFIG` (as kind does): point it at a
    file of the test session's own, never at the user's ~/.kube/config."""
    import tempfile
    d = tempfile.mkdtemp(prefix="netsim-test-kube-")
    config._netsim_kube_dir = d  # type: ignore[attr-defined]
    os.environ["KUBECONFIG"] = os.path.join(d, "config")


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil
    d = getattr(config, "_netsim_kube_dir", None)
    if d:
        shutil.rmtree(d, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs root (network namespaces)")
    for item in items:
        if "root" in item.keywords and not IS_ROOT:
            item.add_marker(skip)


def unique_name(prefix: str = "t") -> str:
    """Short, unique cluster names (they end up in namespace names)."""
    return f"{prefix}{secrets.token_hex(3)}"


def run_netsim(*args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([*NETSIM, *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"netsim {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@contextlib.contextmanager
def private_etcd():
    """An etcd of its own on free loopback ports in a temporary directory, killed (and the directory
    removed) afterwards; skips only if the etcd binary is missing (scripts/setup.sh installs it)."""
    import shutil
    import tempfile

    from netsim.etcd import server
    if server.binary() is None:
        pytest.skip("no etcd binary (Debian package etcd-server; scripts/setup.sh installs it)")
    d = tempfile.mkdtemp(prefix="netsim-test-etcd-")
    try:
        yield server.start(f"test-{secrets.token_hex(3)}", d)
    finally:
        server.stop(d)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def etcd_server():
    """One private etcd per test module (tests keep apart by key prefix: see `etcd_store`)."""
    with private_etcd() as rec:
        yield rec


def etcd_store(rec, **kw):
    """An EtcdStore under a fresh prefix of `rec`'s etcd (a store as empty as a new cluster's)."""
    from netsim.etcd.store import EtcdStore
    return EtcdStore([rec.client_url], f"/test/{secrets.token_hex(4)}", **kw)


@pytest.fixture(scope="session")
def kernel():
    if not IS_ROOT:
        pytest.skip("needs root")
    from netsim.kernel.linux import LinuxKernel
    k = LinuxKernel()
    yield k
    k.close()


@pytest.fixture
def cluster_name(kernel):
    """A fresh cluster name whose leftovers are removed after the test, whatever happened."""
    from netsim import lifecycle
    name = unique_name()
    yield name
    lifecycle.down(kernel, name)


@contextlib.contextmanager
def live_cluster(kernel, prefix: str, spec: dict | None = None, *, manifests: str | None = None,
                 timeout: float = 60):
    """A running cluster (its daemon included) under a fresh name, with `manifests` applied; removed by name
    on the way out whatever happened, also when `up` itself failed half-way. `kernel` may be None (a
    kernel handle is then opened just for the removal)."""
    from netsim import lifecycle
    from netsim.api import Cluster
    from netsim.model.cluster import parse_cluster
    from netsim.model.errors import Source

    name = unique_name(prefix)
    doc = {"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
           "spec": spec or {"nodes": 2}}
    c = None
    try:
        c = Cluster.up(parse_cluster(doc, Source("<test>")), timeout=timeout)
        if manifests:
            c.apply(manifests)
        yield c
    finally:
        if c is not None:
            c.close()
        if kernel is not None:
            lifecycle.down(kernel, name)
        else:
            from netsim.kernel.linux import LinuxKernel
            k = LinuxKernel()
            try:
                lifecycle.down(k, name)
            finally:
                k.close()
