"""Where a cluster's API endpoint is: its port and PKI under the state directory, and the user's kubeconfig.

`prepare` runs at `up`: it picks a free loopback port (bound to 127.0.0.1 for a moment, then recorded in
`<state dir>/apiserver.json`, so a restarted daemon serves on the same port and the kubeconfig stays
right), makes the PKI (certs.py) and merges the context into the user's kubeconfig. The daemon reads the
record and serves; `down` takes the kubeconfig entries out again (`forget`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from netsim import naming
from netsim.apiserver import kubeconfig

if TYPE_CHECKING:  # certs (cryptography) only where a PKI is made or loaded: `netsim status` reads the record
    from netsim.apiserver import certs

RECORD = "apiserver.json"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ApiEndpoint:
    """Where a cluster's API server listens: its port record and PKI (not an EndpointSlice's endpoint)."""

    cluster: str
    port: int
    pki: certs.Pki

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.port}"

    def kubeconfig(self) -> dict[str, Any]:
        return kubeconfig.build(self.cluster, self.server, self.pki.read("ca.crt"), self.pki.read("admin.crt"),
                                self.pki.read("admin.key"))


def record_path(cluster: str) -> str:
    return os.path.join(naming.state_dir(cluster), RECORD)


def pki_dir(cluster: str) -> str:
    return os.path.join(naming.state_dir(cluster), "pki")


def kubernetes_service_ip(service_cidr: str) -> str:
    """The `kubernetes` Service's ClusterIP: the first address of the service CIDR (the API server's
    GetAPIServerServiceIP, pkg/controlplane/services.go)."""
    return str(ipaddress.ip_network(service_cidr).network_address + 1)


IN_CLUSTER_PORT = 6443  # kube-apiserver's --secure-port: the `kubernetes` Service's targetPort


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def prepare(cluster: str, service_cidr: str, dns_domain: str, *, merge_kubeconfig: bool = True,
            advertise_ip: str | None = None) -> ApiEndpoint:
    """Make the cluster's PKI and endpoint record (the state directory exists); merge the kubeconfig.
    `advertise_ip` is the node IP in-cluster clients reach the API on (in the serving certificate)."""
    from netsim.apiserver import certs

    pki = certs.make_pki(pki_dir(cluster), service_ip=kubernetes_service_ip(service_cidr), dns_domain=dns_domain,
                         advertise_ip=advertise_ip)
    ep = ApiEndpoint(cluster, free_port(), pki)
    kc_path = kubeconfig.path_for_merge() if merge_kubeconfig else None
    error = None
    if kc_path:
        try:
            kubeconfig.merge(ep.kubeconfig(), kc_path)
        except (OSError, yaml.YAMLError) as e:
            # The cluster is fine without it (`netsim kubeconfig` prints the config); `up` says why.
            error, kc_path = f"{kc_path}: {e}", None
    path = record_path(cluster)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"host": HOST, "port": ep.port, "pki": pki.root, "kubeconfig": kc_path,
                   "kubeconfigError": error}, f)
    os.replace(tmp, path)
    return ep


def load(cluster: str) -> ApiEndpoint | None:
    try:
        with open(record_path(cluster)) as f:
            rec = json.load(f)
        from netsim.apiserver import certs

        return ApiEndpoint(cluster, int(rec["port"]), certs.Pki(rec["pki"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def describe(cluster: str) -> dict[str, Any] | None:
    """`status`: the endpoint's URL, its kubeconfig context and the file it was merged into."""
    try:
        with open(record_path(cluster)) as f:
            rec = json.load(f)
        out = {"server": f"https://{rec['host']}:{rec['port']}", "context": kubeconfig.context_name(cluster),
               "kubeconfig": rec.get("kubeconfig")}
        if rec.get("kubeconfigError"):
            out["kubeconfigError"] = rec["kubeconfigError"]
        return out
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def forget(cluster: str) -> bool:
    """`down`: remove the cluster's entries (only those) from the kubeconfig `up` merged them into (the
    one the user's environment names now if there is no record, e.g. after a crash during `up`)."""
    try:
        with open(record_path(cluster)) as f:
            path = json.load(f).get("kubeconfig")
    except (FileNotFoundError, ValueError, AttributeError):
        path = kubeconfig.path_for_merge()
    return kubeconfig.remove(cluster, path) if path else False


Endpoint = ApiEndpoint  # the old name
