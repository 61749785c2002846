"""pytest plugin: a real netsim cluster as a fixture, for asserting on your own manifests and policies.

Installed with netsim (entry point `pytest11`). In a test module:

    import pytest
    pytestmark = pytest.mark.netsim(cluster="cluster.yaml", manifests=["app.yaml"])

    def test_frontend_reaches_api(netsim_cluster):
        results = netsim_cluster.probe(frm="shop/frontend", to="svc/shop/api", ports=[80])
        assert all(r.connected for r in results)

`netsim_cluster` is built once per module (the `netsim` marker on the module, or the default 3-node
flannel cluster) and always torn down, also when tests fail. It needs root; without root the tests are
skipped with that reason. `cluster` is a path (relative to the test file), a Cluster spec dict or a
netsim.model.cluster.ClusterSpec; `manifests` are paths, YAML text or dicts applied once the cluster is up.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netsim(cluster=None, manifests=(), name=None): the netsim cluster "
                                       "the `netsim_cluster` fixture builds for this module")


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("netsim")
    for item in (getattr(request.module, "pytestmark", None) or []) if marker is None else []:
        if getattr(item, "name", None) == "netsim":
            marker = item
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture(scope="module")
def netsim_cluster_factory() -> Any:
    """What builds `netsim_cluster`: `netsim.Cluster` (its classmethod `up(spec, name=...)`). Override this
    fixture to inject one, e.g. a cluster in process on netsim.kernel.fake.FakeKernel and a MemoryStore:
    `functools.partial(Cluster.up, kernel=FakeKernel(), store=MemoryStore())` behind an `up` attribute."""
    from netsim import Cluster  # the front door is the plugin's only way to act on a cluster
    return Cluster


@pytest.fixture(scope="module")
def netsim_cluster(request: pytest.FixtureRequest, netsim_cluster_factory: Any) -> Iterator[Any]:
    from netsim import Cluster
    if netsim_cluster_factory is Cluster and os.geteuid() != 0:
        pytest.skip("netsim clusters need root (network namespaces)")
    from netsim.model.cluster import ClusterSpec, parse_cluster
    from netsim.model.errors import Source

    opts = _options(request)
    base = Path(str(request.fspath)).parent
    name = opts.get("name") or f"pt{secrets.token_hex(3)}"
    spec = opts.get("cluster")
    if isinstance(spec, str):
        spec = str(base / spec)
    elif isinstance(spec, dict):
        spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", **spec}, Source("<marker>"))
    elif spec is not None and not isinstance(spec, ClusterSpec):
        raise TypeError("netsim marker: cluster must be a path, a Cluster spec dict or a ClusterSpec")
    cluster = netsim_cluster_factory.up(spec, name=name)
    try:
        manifests = [str(base / m) if isinstance(m, str) and "\n" not in m else m
                     for m in opts.get("manifests", ())]
        if manifests:
            cluster.apply(manifests)
        yield cluster
    finally:
        cluster.down()
