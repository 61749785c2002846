"""Names of everything a cluster makes, in one place. Kernel object names are a contract (README, "Names").

Network namespaces are `netsim-<cluster>.<role>[.<object>]`:

    netsim-<cluster>.fabric               the underlay bridge and router
    netsim-<cluster>.node.<node>          a node
    netsim-<cluster>.host.<host>          an external host
    netsim-<cluster>.machine.<host>       an emulated host of spec.hosts: its own fabric for its nodes
    netsim-<cluster>.lan                  the emulated hosts' physical network (a bridge)
    netsim-<cluster>.pod.<ns>_<pod>       a pod sandbox, when `<ns>_<pod>` is at most MAX_PART characters
    netsim-<cluster>.pod._<hash16>        any other pod sandbox (its record maps it back, see below)

Why this cannot be confused across clusters or objects:
- a cluster name is a DNS label (a-z, 0-9, '-') of at most MAX_CLUSTER_NAME characters, so the first '.'
  ends it: `netsim-x.` never prefixes a name of cluster `x-pod-default` (`netsim-x-pod-default.`);
- roles are fixed words without '.', so the second '.' ends the role;
- Kubernetes namespaces are DNS labels and pod names DNS subdomains (neither has '_'), so `<ns>_<pod>`
  splits at its only '_' and never starts with one; anything else (long names, or names that did not
  pass validation) becomes `_` + 16 hex digits of sha256 over an unambiguous encoding of (ns, pod).
  Node and host names are DNS labels (the Cluster spec checks them) and are hashed the same way otherwise.

Names stay far below the 255 bytes a file name (/run/netns/<name>) may have: at most
7 + 20 + 1 + 4 + 1 + 63 = 96 characters. The kubelet's sandbox record (under the node's state dir) holds
namespace, pod name and netns, so a hashed name maps back to its pod. All files live under
/run/netsim/<cluster>/. Interface names fit the kernel's 15 characters and are per namespace: fabric
ports are `n<index>`/`h<index>`, pod veths are named by the CNI plugins from the container ID (flannel)
or a hash of namespace.pod (calico).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

PREFIX = "netsim-"
STATE_ROOT = os.environ.get("NETSIM_STATE_ROOT", "/run/netsim")
UNDERLAY_BRIDGE = "underlay"
UPLINK = "eth0"

SEP = "."  # after the cluster name and after the role: never part of a cluster name or a role
POD_SEP = "_"  # between a pod's namespace and name: never part of a Kubernetes name
HASHED = "_"  # leads a hashed object part: never the first character of a readable one
MAX_CLUSTER_NAME = 20
MAX_PART = 63  # longest readable object part
HASH_LEN = 16

FABRIC, NODE, HOST, POD = "fabric", "node", "host", "pod"
# spec.hosts are "machines" in kernel names: `host` already names external hosts (clients outside the cluster).
MACHINE, LAN = "machine", "lan"
ROLES = (FABRIC, NODE, HOST, POD, MACHINE, LAN)

_CLUSTER_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_cluster_name(name: str) -> bool:
    """A DNS label of at most MAX_CLUSTER_NAME characters: it ends up in every name below."""
    return isinstance(name, str) and len(name) <= MAX_CLUSTER_NAME and bool(_CLUSTER_RE.match(name))


def cluster_name_problem(name: str) -> str | None:
    """Why `name` cannot name a cluster (it names namespaces and the state dir), or None."""
    if not is_cluster_name(name):
        return (f"{name!r} is not a cluster name: a lowercase DNS label of at most {MAX_CLUSTER_NAME} characters "
                "(it names namespaces and files)")
    return None


def _check_cluster(cluster: str) -> str:
    if not is_cluster_name(cluster):
        raise ValueError(f"{cluster!r} is not a cluster name (a lowercase DNS label of at most "
                         f"{MAX_CLUSTER_NAME} characters)")
    return cluster


def _hash(*parts: str) -> str:
    """16 hex digits of sha256 over a length-prefixed encoding of `parts` (no two tuples encode alike)."""
    enc = "".join(f"{len(p)}:{p}" for p in parts)
    import hashlib  # OpenSSL's loading is a few ms of every command's start; few names need a hash
    return HASHED + hashlib.sha256(enc.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LEN]


def label_part(name: str) -> str:
    """A node's or host's part: the name itself when it is a DNS label, else a hash."""
    if len(name) <= MAX_PART and _LABEL_RE.match(name):
        return name
    return _hash(name)


def pod_part(namespace: str, pod: str) -> str:
    """A pod's part: `<ns>_<pod>` when both are valid Kubernetes names and it fits, else a hash.
    Also names the pod's files (sandbox record, container logs) so they stay short and unambiguous."""
    text = f"{namespace}{POD_SEP}{pod}"
    if len(text) <= MAX_PART and _LABEL_RE.match(namespace) and _SUBDOMAIN_RE.match(pod):
        return text
    return _hash(namespace, pod)


def cluster_prefix(cluster: str) -> str:
    """What every namespace of `cluster` starts with, and no namespace of any other cluster does."""
    return f"{PREFIX}{_check_cluster(cluster)}{SEP}"


def fabric_ns(cluster: str) -> str:
    return f"{cluster_prefix(cluster)}{FABRIC}"


def node_ns(cluster: str, node: str) -> str:
    return f"{cluster_prefix(cluster)}{NODE}{SEP}{label_part(node)}"


def host_ns(cluster: str, host: str) -> str:
    return f"{cluster_prefix(cluster)}{HOST}{SEP}{label_part(host)}"


def machine_ns(cluster: str, host: str) -> str:
    """An emulated host of spec.hosts: its physical interface, its underlay bridge and its nodes' ports."""
    return f"{cluster_prefix(cluster)}{MACHINE}{SEP}{label_part(host)}"


def lan_ns(cluster: str) -> str:
    """The emulated hosts' shared physical segment."""
    return f"{cluster_prefix(cluster)}{LAN}"


def pod_ns(cluster: str, namespace: str, pod: str) -> str:
    return f"{cluster_prefix(cluster)}{POD}{SEP}{pod_part(namespace, pod)}"


@dataclass(frozen=True)
class NetnsName:
    cluster: str
    role: str
    part: str  # "" for the fabric; the (maybe hashed) object part otherwise

    @property
    def hashed(self) -> bool:
        return self.part.startswith(HASHED)


def parse(netns_name: str) -> NetnsName | None:
    """The cluster, role and object part of a netsim namespace name; None for any other name."""
    if not netns_name.startswith(PREFIX):
        return None
    cluster, sep, rest = netns_name[len(PREFIX):].partition(SEP)
    if not sep or not is_cluster_name(cluster):
        return None
    role, sep, part = rest.partition(SEP)
    if role in (FABRIC, LAN) and not sep:
        return NetnsName(cluster, role, "")
    if role in (NODE, HOST, POD, MACHINE) and sep and part:
        return NetnsName(cluster, role, part)
    return None


def owned_by(cluster: str, netns_name: str) -> bool:
    """Whether `netns_name` belongs to `cluster`: never to another cluster, even one whose name extends it
    (`netsim-demo-2.node.a` is demo-2's, not demo's)."""
    p = parse(netns_name)
    return p is not None and p.cluster == cluster


def pod_ns_prefix(cluster: str) -> str:
    """What every pod netns name of `cluster` starts with."""
    return f"{cluster_prefix(cluster)}{POD}{SEP}"


def fabric_port_for_node(index: int) -> str:
    """The fabric end of node `index`'s uplink (n0, n1, ...)."""
    return f"n{index}"


def fabric_port_for_host(index: int) -> str:
    return f"h{index}"


def lan_port_for_machine(index: int) -> str:
    """The segment's end of emulated host `index`'s physical interface (m0, m1, ...)."""
    return f"m{index}"


def state_dir(cluster: str) -> str:
    """/run/netsim/<cluster>. A name that is not one plain path component never gets here (`down` removes
    this directory: `..` would be /run)."""
    return os.path.join(STATE_ROOT, _check_cluster(cluster))


def node_state_dir(cluster: str, node: str) -> str:
    return os.path.join(state_dir(cluster), "nodes", label_part(node))


def container_log_prefix(cluster: str, namespace: str, pod: str) -> str:
    """What the log files of a pod's containers start with."""
    return os.path.join(state_dir(cluster), "logs", f"{pod_part(namespace, pod)}_")


def container_log(cluster: str, namespace: str, pod: str, container: str) -> str:
    """Where a container's output goes (`netsim logs`)."""
    return f"{container_log_prefix(cluster, namespace, pod)}{label_part(container)}.log"
