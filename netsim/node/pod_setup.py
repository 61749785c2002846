"""What the kubelet prepares for a pod's containers besides the network: /etc/hosts, each container's
environment, command and args (pod_env), its volumes (volumes, atomic_writer) and working directory.

The daemon's ClusterKubelet calls `container_config` before it starts a container: a ContainerConfigError
(a missing ConfigMap/Secret/key, an unsupported fieldRef) or a VolumeError (FailedMount) leaves that one
container Waiting and is retried on the next pass, as the kubelet's pod workers retry a sync
(kuberuntime_manager.go SyncPod: a failed generateContainerConfig is reported as CreateContainerConfigError
and the pod is synced again). `sync_volumes` rewrites API-data volumes when their sources change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from netsim import naming
from netsim.node.hosts_file import pod_hosts_content, remove_hosts, write_hosts
from netsim.node.pod_env import PodContext, container_process
from netsim.node.volumes import PodVolumes, VolumeError, container_mounts

ListFn = Callable[..., list[dict[str, Any]]]


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

    # -- /etc/hosts ------------------------------------------------------------------------------------
    def write_hosts(self, pod: Mapping[str, Any], netns: str, ip: str) -> None:
        """ensureHostsFile for a pod with its own network namespace (hostNetwork pods keep the node's)."""
        ips = [p.get("ip") for p in (pod.get("status") or {}).get("podIPs") or [] if p.get("ip")] or [ip]
        write_hosts(netns, pod_hosts_content(pod, ips, self.domain))

    def remove(self, netns: str, namespace: str, name: str, *, keep_volumes: bool = False) -> None:
        remove_hosts(netns)
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
        return PodContext(pod=pod, configmaps=_Lazy(lambda: {c["metadata"]["name"]: c
                                                             for c in self.list("ConfigMap", ns)}),
                          secrets=_Lazy(lambda: {s["metadata"]["name"]: s for s in self.list("Secret", ns)}),
                          service_env=service_env, host_ip=host_ip, allocatable=_Lazy(allocatable))

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
        """Rewrite the API-data volumes of running pods from the current ConfigMaps, Secrets and pod
        metadata; returns (pod, volume) for every volume that changed."""
        by_part = {naming.pod_part((p.get("metadata") or {}).get("namespace") or "default",
                                   str((p.get("metadata") or {}).get("name", ""))): p for p in pods}
        out = []
        for part in self.volumes.pods():
            pod = by_part.get(part)
            if pod is None:
                continue
            ctx = self.context(pod, {}, host_ip(pod))
            out += [(pod, v) for v in self.volumes.update(part, ctx)]
        return out


__all__ = ["ContainerConfig", "PodSetup", "VolumeError"]
