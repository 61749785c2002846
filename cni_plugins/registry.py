"""Map a CNI `type` (the executable name) to the in-process plugin object."""

from __future__ import annotations

import importlib
from typing import Any

PLUGIN_MODULES = {
    "netsim-flannel": "cni_plugins.flannel",
    "netsim-calico": "cni_plugins.calico",
    "netsim-canal": "cni_plugins.canal",
    "netsim-host-local": "cni_plugins.ipam.host_local",
}


def get_plugin(cni_type: str) -> Any:
    """The in-process plugin for a CNI `type`; KeyError for types we only know as executables (e.g. the
    reference `bridge`), which the kubelet must exec instead."""
    return importlib.import_module(PLUGIN_MODULES[cni_type]).PLUGIN
