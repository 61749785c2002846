"""The endpoint's lifecycle: PKI and kubeconfig entries made at `up`, printed by `netsim kubeconfig`,
taken out at `down`; other kubeconfig entries are left alone."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
import yaml

from netsim import lifecycle
from netsim.api import Cluster
from netsim.apiserver import endpoint
from tests.conftest import NETSIM

pytestmark = pytest.mark.root


def test_up_merges_the_context_and_down_removes_exactly_it(kernel, cluster_name, tmp_path, monkeypatch):
    path = tmp_path / "config"
    theirs = {"apiVersion": "v1", "kind": "Config", "current-context": "other",
              "clusters": [{"name": "other", "cluster": {"server": "https://example.invalid"}}],
              "users": [{"name": "other", "user": {"token": "x"}}],
              "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}]}
    path.write_text(yaml.safe_dump(theirs))
    monkeypatch.setenv("KUBECONFIG", str(path))
    Cluster.up({"spec": {"nodes": 1}}, name=cluster_name, daemon=False).close()
    ctx = f"netsim-{cluster_name}"
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == ctx and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [c["name"] for c in doc["contexts"]] == ["other", ctx]
    server = next(c["cluster"]["server"] for c in doc["clusters"] if c["name"] == ctx)
    ep = endpoint.load(cluster_name)
    assert server == f"https://127.0.0.1:{ep.port}"
    assert all(stat.S_IMODE(os.stat(ep.pki.path(f)).st_mode) == 0o600 for f in os.listdir(ep.pki.root))
    printed = subprocess.run([*NETSIM, "kubeconfig", "--cluster", cluster_name], capture_output=True, text=True,
                             check=True).stdout
    assert yaml.safe_load(printed)["contexts"] == [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}]
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "elsewhere"))  # down uses the file `up` wrote to
    lifecycle.down(kernel, cluster_name)
    doc = yaml.safe_load(path.read_text())
    assert doc == {**theirs, "current-context": "", "preferences": {}}
