"""One write path for single objects: validated and admitted as `netsim apply` validates and admits.

`netsim.Cluster.update` (label, annotate, edit, set image) and the API server's create/update/patch both go
through `admit_object`: the model's parser (netsim.model.loader.parse_object: Kubernetes defaulting and
validation, SpecError naming the field) and admission (netsim.controlplane.admission.admit: ClusterIPs,
NodePorts, LoadBalancer IPs, external IPs), so a bad object gets the same error whichever way it came.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from netsim.controlplane.admission import admit
from netsim.model.errors import Source, UsageError
from netsim.model.generic import CustomKind
from netsim.model.loader import parse_object
from netsim.store import Store, identity

if TYPE_CHECKING:
    from netsim.model.cluster import ClusterSpec

SERVER_OWNED = ("metadata", "status", "apiVersion", "kind")


def admit_object(tx: Store, spec: ClusterSpec, obj: Mapping[str, Any], custom: Mapping[str, CustomKind],
                 source: str = "<update>") -> dict[str, Any]:
    """`obj` as it is to be stored: its fields defaulted and admitted (allocations filled in), its own
    metadata kept (the model keeps only what it validates), labels and annotations as validated.
    Raises SpecError (bad input, naming the field) or UsageError (a kind the cluster does not know)."""
    obj = copy.deepcopy(dict(obj))
    parsed = parse_object(obj, Source(source), custom)
    if getattr(parsed, "verified", True) is False:
        raise UsageError(f"{obj.get('kind')} is not a kind this cluster knows")
    want = identity(parsed.to_dict())
    namespaces = [n["metadata"]["name"] for n in tx.list("Namespace")]
    admitted = next(a for a in admit([parsed.to_dict()], spec, tx.list("Service"), namespaces)
                    if identity(a) == want)
    for key in [k for k in obj if k not in SERVER_OWNED]:
        if key not in admitted:
            del obj[key]
    obj.update({k: v for k, v in admitted.items() if k not in ("metadata", "status")})
    if "status" in admitted and "status" not in obj:
        obj["status"] = admitted["status"]  # e.g. the LoadBalancer ingress IP admission allocated
    for key in ("labels", "annotations"):
        value = (admitted.get("metadata") or {}).get(key)
        if value:
            obj["metadata"][key] = value
        else:
            obj["metadata"].pop(key, None)
    return obj
