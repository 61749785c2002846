"""NetworkPolicies as the store hands them out, read through its parse cache (netsim.objcache).

felix's calculation graph, `netsim verify`'s model and trace's policy view all read the stored policies;
each used to parse every policy it listed, so one policy version was parsed once per reader and per pass.
Through the store's parse cache a version is parsed once per process, whichever reader asks first.

A what-if policy (netsim.controlplane.whatif) is not a stored version: it shares the live policy's
namespace and name, and may even carry its resourceVersion (copied from `netsim get -o yaml`), so it is
parsed on its own and never filed in the cache, where it would stand for the live policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.model.networkpolicy import NetworkPolicy

STORE_SOURCE = Source("<store>")


def decode_policy(store: Any, obj: Mapping[str, Any], *, stored: bool = True) -> NetworkPolicy:
    """The typed NetworkPolicy of `obj`: through `store`'s parse cache when `obj` is a version the store
    handed out (`stored`), else parsed here. Raises what the parse raises (SpecError)."""
    decode = getattr(store, "decode", None)
    if stored and decode is not None and obj.get("kind") == "NetworkPolicy":
        return decode(obj)
    return parse_object(obj, STORE_SOURCE)
