"""The pytest plugin builds its cluster through an injected builder (`netsim_cluster_factory`), here one
in process on FakeKernel and MemoryStore: no root, no namespace outside the process. A run in a fresh pytest
process, as a user's suite would run."""

from __future__ import annotations

import subprocess
import sys

CONFTEST = '''
import pytest
from netsim import Cluster
from netsim.kernel.fake import FakeKernel
from netsim.store import MemoryStore

_up = Cluster.up


def _refuse(*args, **kwargs):
    raise AssertionError("the plugin built a real cluster instead of asking netsim_cluster_factory")


Cluster.up = _refuse  # the plugin must go through the injected builder


class InProcess:
    def __init__(self):
        self.kernel = FakeKernel()

    def up(self, spec, name=None):
        return _up(spec, name=name, kernel=self.kernel, store=MemoryStore())


@pytest.fixture(scope="module")
def netsim_cluster_factory():
    return InProcess()
'''

TEST = '''
import pytest

pytestmark = pytest.mark.netsim(cluster={"spec": {"nodes": 2}}, manifests=["""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
"""])


def test_the_cluster_lives_in_process(netsim_cluster):
    assert netsim_cluster.in_process
    assert sorted(n["name"] for n in netsim_cluster.state.nodes) == ["node-1", "node-2"]
    web = [p for p in netsim_cluster.pods() if p["metadata"]["name"].startswith("web-")]
    assert len(web) == 2
'''


def test_plugin_builds_through_the_injected_factory(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_inproc_plugin.py").write_text(TEST)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           str(tmp_path / "test_inproc_plugin.py")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
