"""A pod's /etc/hosts, as the kubelet writes it (pkg/kubelet/kubelet_pods.go ensureHostsFile,
managedHostsFileContent, hostsEntriesFromHostAliases; the host and domain names from
GeneratePodHostNameAndDomain).

A pod with its own network namespace gets the managed file: the "# Kubernetes-managed hosts file." header,
the localhost lines, one line per pod IP with the pod's hostname (`spec.hostname`, else the pod's name
truncated to 63 characters) and, when `spec.subdomain` is set, the FQDN
`<hostname>.<subdomain>.<namespace>.svc.<cluster domain>` first; then `hostAliases` under
"# Entries added by HostAliases.". A hostNetwork pod keeps the node's view (netsim's nodes share the host's
/etc/hosts, which netsim never writes), so nothing is written for it and its hostAliases are not applied.

The file goes next to the pod's resolv.conf, /etc/netns/<netns>/hosts: container_init binds every file of
that directory over /etc in the container's private mount namespace, and `netsim exec` (`ip netns exec`)
does the same, so both see it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from netsim.dns.resolvconf import NETNS_ETC, resolv_conf_path, with_suppressed_unlink, write_netns_etc
from netsim.model.pod import Pod

MANAGED_HEADER = "# Kubernetes-managed hosts file.\n"
HOSTNAME_MAX = 63  # GeneratePodHostNameAndDomain truncates the pod name used as hostname


def pod_hostname_and_domain(pod: Pod, cluster_domain: str) -> tuple[str, str]:
    """GeneratePodHostNameAndDomain: (hostname, domain) where domain is empty without a subdomain."""
    hostname = pod.spec.hostname or pod.meta.name[:HOSTNAME_MAX].rstrip("-.")
    domain = ""
    if pod.spec.subdomain:
        domain = f"{pod.spec.subdomain}.{pod.meta.namespace or 'default'}.svc.{cluster_domain}"
    return hostname, domain


def managed_hosts_content(pod_ips: Sequence[str], hostname: str, domain: str,
                          host_aliases: Sequence[Mapping[str, Any]] = ()) -> str:
    """managedHostsFileContent."""
    lines = [MANAGED_HEADER, "127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n",
             "fe00::0\tip6-localnet\n", "fe00::0\tip6-mcastprefix\n", "fe00::1\tip6-allnodes\n",
             "fe00::2\tip6-allrouters\n"]
    for ip in pod_ips:
        lines.append(f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain else f"{ip}\t{hostname}\n")
    if host_aliases:
        lines.append("\n# Entries added by HostAliases.\n")
        for alias in host_aliases:
            for name in alias.get("hostnames") or []:
                lines.append(f"{alias.get('ip', '')}\t{name}\n")
    return "".join(lines)


def pod_hosts_content(pod: Pod, pod_ips: Sequence[str], cluster_domain: str) -> str:
    """The typed Pod's hosts file (hostAliases is a PodSpec field netsim keeps as given, `spec.extra`)."""
    hostname, domain = pod_hostname_and_domain(pod, cluster_domain)
    return managed_hosts_content(pod_ips, hostname, domain, pod.spec.extra.get("hostAliases") or [])


def hosts_path(netns: str, root: str = NETNS_ETC) -> Path:
    return resolv_conf_path(netns, root).with_name("hosts")


def write_hosts(netns: str, content: str, root: str = NETNS_ETC) -> Path:
    """Put `content` at <root>/<netns>/hosts, atomically (0644, as ensureHostsFile)."""
    return write_netns_etc(hosts_path(netns, root), content)


def remove_hosts(netns: str, root: str = NETNS_ETC) -> bool:
    return with_suppressed_unlink(hosts_path(netns, root))
