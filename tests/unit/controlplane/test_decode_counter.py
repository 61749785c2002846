"""One object model (issue #16 item 1): across all the controllers of a pass - scheduler, ReplicaSet,
Deployment, EndpointSlice, node lifecycle, HPA, disruption, garbage collector - a Pod is parsed once per
resourceVersion, by the store's parse cache, whoever reads it; later passes at the same versions parse
nothing. Counted at the one decoder (netsim.objcache.decode_stored), per (kind, namespace, name, version)."""

from __future__ import annotations

from collections import Counter

from netsim import objcache
from netsim.controlplane import objects as o
from netsim.model.metrics import ContainerUsage, MetricsView, PodUsage

from .conftest import deployment
from .test_endpointslice_batching import SVC as SERVICE
from .test_hpa import hpa, web

PDB = """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"""


def test_each_pod_version_is_parsed_once_across_all_controllers(h, monkeypatch):
    parsed: Counter = Counter()
    plain = objcache.decode_stored

    def counting(obj, kind=None):
        md = obj.get("metadata") or {}
        parsed[(kind or obj.get("kind"), md.get("namespace"), md.get("name"), md.get("resourceVersion"))] += 1
        return plain(obj, kind)

    monkeypatch.setattr(objcache, "decode_stored", counting)
    h.config.node_monitor_grace_seconds = 1e9  # controller passes only: no kubelet heartbeats
    h.add_nodes(2)
    h.apply(web(3) + "---" + SERVICE + "---" + PDB + "---" + hpa(target=50) + "---" + deployment("api", 2))
    assert h.converge().converged
    now = h.clock.now()
    h.metrics = MetricsView({f"default/{o.name(p)}": PodUsage(now, 15.0, (ContainerUsage("c", 0.5, 1e7),), 0.0)
                             for p in h.pods()})
    for _ in range(4):  # HPA syncs, a rescale, the rollout it starts, quiet passes
        h.clock.advance(20)
        h.once()
    pods = {k: n for k, n in parsed.items() if k[0] == "Pod"}
    assert len({k[2] for k in pods}) >= 5  # the pods were read typed, through the cache
    assert max(pods.values()) == 1, {k: n for k, n in pods.items() if n > 1}
    before = sum(parsed.values())
    h.once()
    h.once()
    assert sum(parsed.values()) == before  # quiet passes at unchanged versions parse nothing
