"""netsim's CNI plugins: flannel, calico and canal look-alikes, host-local and calico-style IPAM.

Each plugin is an object with validate/add/delete/check/gc/status over the CNI data types
(`cni_plugins.types`), driven either by the exec protocol (`skel.run_exec`, the console scripts) or in
process (`skel.invoke`). `registry.get_plugin(type)` maps a CNI `type` (the executable name) to the plugin.
"""

from cni_plugins.registry import get_plugin

__all__ = ["get_plugin"]
