"""What the kubelet prepares for a pod's containers besides the network: /etc/hosts, each container's
environment, command and args (pod_env), its volumes (volumes, atomic_writer) and working directory.

The daemon's ClusterKubelet calls `container_config` before it starts a container: a ContainerConfigError
(a missing ConfigMap/Secret/key, an unsupported fieldRef) or a VolumeError (FailedMount) leaves that one
container Waiting and is retried on the next pass, as the kubelet's pod workers retry a sync
(kuberuntime_manager.go SyncPod: a failed generateContainerConfig is reported as CreateContainerConfigError
and the pod is synced again). `sync_volumes` rewrites API-data volumes when their sources change.

ServiceAccount access: what the ServiceAccount admission plugin adds to a pod (plugin/pkg/admission/
serviceaccount/admission.go: mountServiceAccountToken / TokenVolumeSource) is added here, when the kubelet
makes the container's config, without changing the stored Pod: a projected volume `kube-api-access-<5>`
(a serviceAccountToken for 3607 s at `token`, `ca.crt` from the `kube-root-ca.crt` ConfigMap, the
namespace from the downward API at `namespace`, defaultMode 0644) mounted read-only at
/var/run/secrets/kubernetes.io/serviceaccount in every container, unless automounting is off
(shouldAutomount: the pod's `automountServiceAccountToken`, else the ServiceAccount's, else on) or the
container already mounts something there. The token is pod-bound and signed with the cluster's
service-account key (netsim.apiserver.satoken); one per pod and audience, kept while the pod runs.
netsim has no root-ca-cert-publisher: a namespace without a stored `kube-root-ca.crt` ConfigMap is seen
as holding the one it would publish (the cluster CA).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from netsim import naming
from netsim.apiserver import satoken
from netsim.apiserver.endpoint import pki_dir
from netsim.model.pod import Pod
from netsim.node.hosts_file import pod_hosts_content, remove_hosts, write_hosts
from netsim.node.pod_env import PodContext, container_process
from netsim.node.volumes import PodVolumes, VolumeError, container_mounts

ListFn = Callable[..., list[dict[str, Any]]]
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"  # root-ca-cert-publisher's ConfigMap in every namespace


def should_automount(pod: Mapping[str, Any], account: Mapping[str, Any] | None) -> bool:
    """The admission plugin's shouldAutomount: the pod's field wins, then the ServiceAccount's, else true."""
    spec = pod.get("spec") or {}
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account is not None and account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def service_account_name(pod: Mapping[str, Any]) -> str:
    spec = pod.get("spec") or {}
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")


def api_access_volume(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The projected volume the admission plugin adds (TokenVolumeSource), its name's 5 characters taken
    from the pod's UID so that every pass makes the same one."""
    uid = str((pod.get("metadata") or {}).get("uid") or (pod.get("metadata") or {}).get("name") or "")
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the API server's name generator's alphabet
    digest = hashlib.sha256(uid.encode()).digest()
    suffix = "".join(alphabet[b % len(alphabet)] for b in digest[:5])
    return {"name": f"kube-api-access-{suffix}", "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": satoken.REQUESTED_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


@dataclass
class ContainerConfig:
    argv: list[str]  # [] when the image's entrypoint would run (the workload server plays it)
    env: dict[str, str]
    mounts: list[dict[str, Any]]
    workdir: str
    scratch: str  # an empty directory container_init may mount its private tmpfs on


class _Lazy(Mapping[str, Any]):
    """A mapping loaded on first use."""

    def __init__(self, load: Callable[[], dict[str, Any]]):
        self._load = load
        self._data: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._load()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def _host_allocatable() -> dict[str, str]:
    """The machine's CPUs and memory: what a node offers when its Node object does not say."""
    out = {"cpu": str(os.cpu_count() or 1)}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    out["memory"] = f"{int(line.split()[1])}Ki"
    except OSError:
        pass
    return out


class PodSetup:
    def __init__(self, cluster: str, cluster_domain: str, store_list: ListFn, store_get: Callable[..., Any]):
        self.cluster = cluster
        self.domain = cluster_domain
        self.list = store_list
        self.get = store_get
        self.volumes = PodVolumes(naming.state_dir(cluster))
        self.pki = pki_dir(cluster)
        self._sa_key: Any = None
        self._tokens: dict[tuple[str, str, str, str], bytes] = {}  # (ns, pod, uid, audience) -> token

    # -- /etc/hosts ------------------------------------------------------------------------------------
    def write_hosts(self, pod: Pod, netns: str, ip: str) -> None:
        """ensureHostsFile for a pod (typed) with its own network namespace (hostNetwork pods keep the
        node's): its podIPs, or the sandbox's address before the status has one."""
        ips = list(pod.status.pod_ips) or [ip]
        write_hosts(netns, pod_hosts_content(pod, ips, self.domain))

    def remove(self, netns: str, namespace: str, name: str, *, keep_volumes: bool = False) -> None:
        remove_hosts(netns)
        for k in [k for k in self._tokens if k[:2] == (namespace, name)]:
            del self._tokens[k]
        if not keep_volumes:
            self.volumes.teardown(naming.pod_part(namespace, name))

    # -- containers ------------------------------------------------------------------------------------
    def context(self, pod: Mapping[str, Any], service_env: Mapping[str, str], host_ip: str) -> PodContext:
        """The objects a container's config may read, each read from the store only when first needed
        (most containers reference none: a thousand pods must not cost three thousand queries)."""
        ns = (pod.get("metadata") or {}).get("namespace") or "default"

        def allocatable() -> dict[str, Any]:
            node = self.get("Node", None, (pod.get("spec") or {}).get("nodeName") or "") or {}
            return dict((node.get("status") or {}).get("allocatable") or {}) or _host_allocatable()
        def configmaps() -> dict[str, Any]:
            out = {c["metadata"]["name"]: c for c in self.list("ConfigMap", ns)}
            if ROOT_CA_CONFIGMAP not in out and os.path.exists(os.path.join(self.pki, "ca.crt")):
                with open(os.path.join(self.pki, "ca.crt")) as f:
                    out[ROOT_CA_CONFIGMAP] = {"metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns},
                                              "data": {"ca.crt": f.read()}}
            return out
        return PodContext(pod=pod, configmaps=_Lazy(configmaps),
                          secrets=_Lazy(lambda: {s["metadata"]["name"]: s for s in self.list("Secret", ns)}),
                          service_env=service_env, host_ip=host_ip, allocatable=_Lazy(allocatable),
                          sa_token=lambda audience: self.token(pod, audience))

    def token(self, pod: Mapping[str, Any], audience: str = "") -> bytes:
        """The pod's ServiceAccount token for `audience` (issued once per pod; the placeholder when the
        cluster has no API endpoint to accept one)."""
        from netsim.node.volumes import PLACEHOLDER_TOKEN
        md = pod.get("metadata") or {}
        ns, name, uid = md.get("namespace") or "default", str(md.get("name", "")), str(md.get("uid") or "")
        key = (ns, name, uid, audience)
        if key not in self._tokens:
            if not os.path.exists(os.path.join(self.pki, "ca.crt")):
                return PLACEHOLDER_TOKEN
            if self._sa_key is None:
                self._sa_key = satoken.load_key(self.pki)
            sa = service_account_name(pod)
            account = self.get("ServiceAccount", ns, sa) or {}
            binding = satoken.Binding(ns, sa, str((account.get("metadata") or {}).get("uid") or ""), name, uid,
                                      str((pod.get("spec") or {}).get("nodeName") or ""))
            self._tokens[key] = satoken.issue(self._sa_key, self.domain, binding, audience=audience).encode()
        return self._tokens[key]

    def api_access(self, pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any] | None:
        """The kube-api-access volume to mount in `container`, or None (automount off, the path taken)."""
        if any(vm.get("mountPath") == satoken.MOUNT_PATH for vm in container.get("volumeMounts") or []):
            return None
        ns = (pod.get("metadata") or {}).get("namespace") or "default"
        if not should_automount(pod, self.get("ServiceAccount", ns, service_account_name(pod))):
            return None
        return api_access_volume(pod)

    def container_config(self, pod: Mapping[str, Any], container: Mapping[str, Any], ctx: PodContext,
                         node: str) -> ContainerConfig:
        """Everything container_init needs for `container`; ContainerConfigError / VolumeError otherwise."""
        md = pod.get("metadata") or {}
        part = naming.pod_part(md.get("namespace") or "default", str(md.get("name", "")))
        argv, env = container_process(ctx, container)
        mounts: list[dict[str, Any]] = []
        scratch = ""
        if argv:
            by_name = {str(v.get("name")): v for v in (pod.get("spec") or {}).get("volumes") or []}
            access = self.api_access(pod, container)
            if access is not None:
                by_name[access["name"]] = access
                container = {**container, "volumeMounts": [
                    *(container.get("volumeMounts") or []),
                    {"name": access["name"], "mountPath": satoken.MOUNT_PATH, "readOnly": True}]}
            paths = {}
            for vm in container.get("volumeMounts") or []:
                name = str(vm.get("name", ""))
                if name not in by_name:
                    raise VolumeError(name, f'volume "{name}" not found in the pod\'s volumes')
                if name not in paths:
                    paths[name] = self.volumes.setup(part, naming.label_part(node), by_name[name], ctx)
            mounts = container_mounts(container, by_name, paths, env)
            scratch = os.path.join(self.volumes.pod_dir(part), "containers", naming.label_part(str(container["name"])))
            os.makedirs(scratch, mode=0o700, exist_ok=True)
        return ContainerConfig(argv, env, mounts, str(container.get("workingDir") or ""), scratch)

    def sync_volumes(self, pods: list[Mapping[str, Any]],
                     host_ip: Callable[[Mapping[str, Any]], str]) -> list[tuple[Mapping[str, Any], str]]:
        """Rewrite the API-data volumes of `pods` (those whose sources changed; the caller picks them) from
        the current ConfigMaps, Secrets and pod metadata; returns (pod, volume) for every volume that changed."""
        out = []
        for pod in pods:
            part = naming.pod_part((pod.get("metadata") or {}).get("namespace") or "default",
                                   str((pod.get("metadata") or {}).get("name", "")))
            if not self.volumes.has(part):
                continue
            ctx = self.context(pod, {}, host_ip(pod))
            out += [(pod, v) for v in self.volumes.update(part, ctx)]
        return out


__all__ = ["ContainerConfig", "PodSetup", "VolumeError"]
