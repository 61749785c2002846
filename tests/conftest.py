"""Shared fixtures. Root tests build real namespaces and always clean up, also when they fail."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

IS_ROOT = os.geteuid() == 0
NETSIM = [sys.executable, "-m", "netsim.cli.main"]


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
