"""`spec.hosts`: the machines a cluster's nodes run on, and which node runs where.

A cluster without `hosts` runs on one machine, as it always has. With `hosts`, every host is a machine with
an address on one shared physical network (its "physical" interface); each node names its `host:` or is
dealt out round-robin. On one machine netsim emulates each host as a namespace (netsim/fabric.py,
netsim/hostnet.py). These hosts are machines *of* the cluster; `spec.externalHosts` are clients outside it.

Why one physical subnet: the hosts' own network carries the VXLAN that joins their fabrics into one L2
underlay, and its VTEPs address each other directly (flood-and-learn with head-end replication over one
segment, the Linux kernel's Documentation/networking/vxlan.rst). Hosts in several routed subnets would work
for the VXLAN as well, but one segment is what an emulated machine room needs and keeps the plan checkable.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netsim.model.meta import DNS1123_LABEL, Fields

MAX_HOSTS = 64
DEFAULT_PREFIX = 24


@dataclass(frozen=True)
class MachineSpec:
    """One host of the cluster: a machine with `address` on the hosts' physical network."""

    name: str
    address: str
    prefixlen: int

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.address}/{self.prefixlen}", strict=False)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "address": f"{self.address}/{self.prefixlen}"}


def parse_hosts(spec: Fields, *, reserved: list[tuple[str, str]]) -> tuple[MachineSpec, ...]:
    """`spec.hosts`; `reserved`: (CIDR, what) the physical network must not overlap (pod, service and node
    networks: a host network inside the pod CIDR would be routed into the overlay, as kind refuses a docker
    network overlapping the pod subnet)."""
    raw = spec.list("hosts")
    if len(raw) > MAX_HOSTS:
        raise spec.error("hosts", f"must list at most {MAX_HOSTS} hosts, got {len(raw)}")
    hosts: list[MachineSpec] = []
    names: set[str] = set()
    addresses: dict[str, str] = {}
    for i, item in enumerate(raw):
        hf = spec.sub(item, f".hosts[{i}]")
        hf.reject_unknown({"name", "address"})
        name = hf.str("name", required=True)
        assert name is not None
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            raise hf.error("name", f"{name!r} must be a lowercase RFC 1123 label (a-z, 0-9, '-')")
        if name in names:
            raise hf.error("name", f"duplicate host name {name!r}")
        names.add(name)
        text = hf.str("address", required=True)
        assert text is not None
        try:
            iface = ipaddress.IPv4Interface(text)
        except ValueError:
            raise hf.error("address", f"{text!r} is not an IPv4 address (optionally with /prefix)") from None
        prefix = iface.network.prefixlen if "/" in text else DEFAULT_PREFIX
        ip, net = iface.ip, ipaddress.IPv4Network(f"{iface.ip}/{prefix}", strict=False)
        if (ip.is_multicast or ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip.is_reserved
                or ip == ipaddress.IPv4Address("255.255.255.255")):
            raise hf.error("address", f"{ip} is not a unicast host address")
        if prefix > 30:
            raise hf.error("address", f"/{prefix} leaves no room for a network of hosts (at most /30)")
        if ip in (net.network_address, net.broadcast_address):
            raise hf.error("address", f"{ip} is the network or broadcast address of {net}")
        if str(ip) in addresses:
            raise hf.error("address", f"{ip} is already the address of host {addresses[str(ip)]}")
        addresses[str(ip)] = name
        if hosts and net != hosts[0].network:
            raise hf.error("address", f"{ip}/{prefix} is not on the hosts' network {hosts[0].network} (that of "
                                      f"hosts[0]): the hosts share one physical segment")
        for cidr, what in reserved:
            if net.overlaps(ipaddress.IPv4Network(cidr)):
                raise hf.error("address", f"the hosts' network {net} overlaps the {what} {cidr}")
        hosts.append(MachineSpec(name, str(ip), prefix))
    return tuple(hosts)


def place_nodes(spec: Fields, wanted: list[str | None], hosts: tuple[MachineSpec, ...]) -> list[str | None]:
    """The host of every node: the one it names (which must exist), else round-robin in list order over
    `hosts` (the k-th node without `host:` goes to hosts[k mod len(hosts)]); None for all without hosts."""
    known = {h.name for h in hosts}
    out: list[str | None] = []
    k = 0
    for i, host in enumerate(wanted):
        if host is not None:
            if not hosts:
                raise spec.error(f"nodes[{i}].host", f"names host {host!r}, but spec.hosts lists no hosts")
            if host not in known:
                raise spec.error(f"nodes[{i}].host", f"unknown host {host!r} (spec.hosts: "
                                                     f"{', '.join(sorted(known))})")
            out.append(host)
        elif hosts:
            out.append(hosts[k % len(hosts)].name)
            k += 1
        else:
            out.append(None)
    return out
