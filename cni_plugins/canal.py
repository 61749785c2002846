"""canal: Calico's pod wiring on flannel's network.

As projectcalico/calico `manifests/canal.yaml` deploys it (fact sheet flannel.md section 9): the CNI plugin
is calico's (cali veths, /32 addresses, 169.254.1.1 default route, host /32 routes) with
`ipam: {type: host-local, subnet: usePodCidr}`, and flanneld (vxlan, --ip-masq, kube subnet manager) carries
traffic between nodes over flannel.1. There is no cni0 bridge. The node daemon is `flannel.Flanneld`
unchanged; this module only supplies the CNI plugin, whose address range is the node's lease read from the
subnet.env flanneld writes, and whose MTU is FLANNEL_MTU.

Driving it:
    Flanneld(kernel, ctx, FlannelNetConf(backend="vxlan")).sync(leases)      # per node, as for flannel
    invoke(PLUGIN, "ADD", CniArgs(...), conf, kernel)
    list_endpoints(ctx)                                                        # felix input
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cni_plugins.common import NodeContext, kernel_factory
from cni_plugins.flannel import Flanneld, FlannelNetConf, Lease, lease_for, read_subnet_env, subnet_env_path
from cni_plugins.ipam import host_local
from cni_plugins.routed_veth import RoutedVethPlugin, list_endpoints
from cni_plugins.skel import Invocation, plugin_main
from cni_plugins.types import ERR_INVALID_CONFIG, ERR_NOT_AVAILABLE, CniError

__all__ = ["PLUGIN", "Canal", "Flanneld", "FlannelNetConf", "Lease", "lease_for", "list_endpoints"]


class Canal(RoutedVethPlugin):
    """The `netsim-canal` CNI plugin: calico veths, host-local IPAM on the node podCIDR, flannel MTU."""

    name = "netsim-canal"

    def validate(self, conf: dict[str, Any]) -> None:
        super().validate(conf)
        ipam = conf.get("ipam") or {}
        if not isinstance(ipam, dict):
            raise CniError(ERR_INVALID_CONFIG, "'ipam' must be an object")
        if ipam.get("type", "host-local") not in ("host-local", "netsim-host-local"):
            raise CniError(ERR_INVALID_CONFIG, f"canal uses host-local IPAM, not {ipam.get('type')!r}")
        subnet = ipam.get("subnet", "usePodCidr")
        if subnet != "usePodCidr":
            raise CniError(ERR_INVALID_CONFIG, "canal's ipam.subnet must be 'usePodCidr'", f"subnet={subnet!r}")

    def _subnet_file(self, inv: Invocation, ctx: NodeContext) -> Path:
        return Path(inv.conf["subnetFile"]) if inv.conf.get("subnetFile") else subnet_env_path(ctx)

    def _cfg(self, inv: Invocation, ctx: NodeContext, with_range: bool) -> host_local.HostLocalConfig:
        ipam = inv.conf.get("ipam") or {}
        ranges = []
        if with_range:
            env = read_subnet_env(self._subnet_file(inv, ctx))
            ranges = [[host_local.Range.parse({"subnet": env.subnet}, "podCIDR")]]
        return host_local.HostLocalConfig(network=inv.conf["name"], range_sets=ranges,
                                          data_dir=str(ipam.get("dataDir") or ctx.node_dir / "cni" / "networks"))

    def assign(self, inv: Invocation, ctx: NodeContext) -> list[str]:
        res = host_local.allocate(self._cfg(inv, ctx, True), inv.args.container_id, inv.args.ifname,
                                  host_local.requested_ips(inv.conf, inv.args.args))
        return [ip.address.split("/")[0] for ip in res.ips]

    def release(self, inv: Invocation, ctx: NodeContext) -> None:
        host_local.release(self._cfg(inv, ctx, False), inv.args.container_id, inv.args.ifname)

    def ipam_gc(self, inv: Invocation, ctx: NodeContext, valid: list[dict[str, str]]) -> None:
        host_local.gc(self._cfg(inv, ctx, False), valid)

    def mtu(self, inv: Invocation, ctx: NodeContext) -> int:
        if inv.conf.get("mtu"):
            return int(inv.conf["mtu"])
        return read_subnet_env(self._subnet_file(inv, ctx)).mtu

    def ready(self, inv: Invocation, ctx: NodeContext) -> None:
        try:
            read_subnet_env(self._subnet_file(inv, ctx))
        except CniError as exc:
            raise CniError(ERR_NOT_AVAILABLE, "flannel is not ready on this node", exc.msg) from exc


PLUGIN = Canal()


def main() -> None:
    """Console script `netsim-canal`."""
    plugin_main(PLUGIN, kernel_factory)


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
