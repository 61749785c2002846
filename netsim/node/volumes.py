"""Pod volumes as the kubelet's volume plugins make them, as files under the cluster's state directory.

Each volume a running container mounts is a directory <state>/pods/<ns>_<pod>/volumes/<volume>, bound at
the container's `mountPath` by container_init in the container's private mount namespace:
- configMap, secret, downwardAPI, projected: written with the kubelet's atomic writer (atomic_writer.py:
  `..data` symlink swap) from the payload the plugins compute (pkg/volume/configmap/configmap.go and
  secret/secret.go MakePayload: every key, or only `items` key -> path; mode = item mode, else
  defaultMode, else 0644; a missing object or key is an error unless `optional`; downwardapi.go
  CollectData: fieldRef and resourceFieldRef items; projected/projected.go collectData: the sources in
  order). They are rewritten when the ConfigMap, Secret or the pod's labels/annotations change, as the
  kubelet's periodic volume sync does, and always mounted read-only (ReadOnlyAPIDataVolumes). A
  `serviceAccountToken` projection gets a pod-bound token signed with the cluster's service-account key
  (netsim.apiserver.satoken), which the cluster's API server accepts; a placeholder only where the
  cluster has no API endpoint.
- emptyDir: one directory per pod shared by its containers (mode 0777, as emptyDir's setupDir makes it),
  kept across container restarts, removed with the pod. `medium: Memory` mounts a tmpfs there (with
  `sizeLimit` as its size), named under the cluster's state directory and unmounted by `down`.
- persistentVolumeClaim and ephemeral: netsim has no storage provisioner; they are played as an
  emptyDir-like directory per pod (the data lives as long as the pod).
- hostPath never touches the host's filesystem: it is mapped to <state>/nodes/<node>/hostpath/<path>, a
  directory shared by the pods of that node (as a host path is), created empty. Types "" ,
  DirectoryOrCreate and Directory give a directory, FileOrCreate and File an empty file; Socket,
  CharDevice and BlockDevice cannot be played and are refused.
- any other source (nfs, iscsi, csi, ...) is refused.
A refused or failing volume keeps the pod's containers Waiting (reason ContainerCreating) with a Warning
event FailedMount "MountVolume.SetUp failed for volume \"v\" : <why>", and is retried every pass.

Volumes are made only for containers netsim runs (those with a `command`): the workload server plays the
others, which have no processes to mount anything into.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from netsim.node import atomic_writer
from netsim.node.atomic_writer import FileProjection
from netsim.node.pod_env import (
    PodContext,
    configmap_data,
    expand,
    field_value,
    mapping_for,
    parse_quantity,
    resource_value,
    secret_data,
)
from netsim.node.security import ContainerConfigError

DEFAULT_MODE = 0o644
API_DATA = ("configMap", "secret", "downwardAPI", "projected")
DIR_LIKE = ("persistentVolumeClaim", "ephemeral")
PLACEHOLDER_TOKEN = b"netsim-placeholder-service-account-token\n"


class VolumeError(Exception):
    """A volume cannot be set up (the kubelet's FailedMount)."""

    def __init__(self, volume: str, why: str):
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {why}')
        self.volume = volume


def _mode(item: Mapping[str, Any], default: int) -> int:
    mode = item.get("mode")
    return int(mode) if mode is not None else default


def _keyed(data: dict[str, bytes], items: list[Mapping[str, Any]] | None, mode: int, what: str,
           optional: bool) -> dict[str, FileProjection]:
    """MakePayload of the configMap and secret plugins."""
    if not items:
        return {k: FileProjection(v, mode) for k, v in data.items()}
    out = {}
    for it in items:
        key = str(it.get("key", ""))
        if key not in data:
            if optional:
                continue
            raise ValueError(f"{what} references non-existent {'config ' if what == 'configmap' else 'secret '}"
                             f"key: {key}")
        out[str(it.get("path", key))] = FileProjection(data[key], _mode(it, mode))
    return out


def _configmap(src: Mapping[str, Any], ctx: PodContext, mode: int) -> dict[str, FileProjection]:
    name = str(src.get("name", ""))
    cm = ctx.configmaps.get(name)
    if cm is None:
        if src.get("optional"):
            return {}
        raise ValueError(f'configmap "{name}" not found')
    return _keyed(configmap_data(cm), src.get("items"), mode, "configmap", bool(src.get("optional")))


def _secret(src: Mapping[str, Any], ctx: PodContext, mode: int, name_key: str) -> dict[str, FileProjection]:
    name = str(src.get(name_key, ""))
    secret = ctx.secrets.get(name)
    if secret is None:
        if src.get("optional"):
            return {}
        raise ValueError(f'secret "{name}" not found')
    return _keyed(secret_data(secret), src.get("items"), mode, "secret", bool(src.get("optional")))


def _downward(src: Mapping[str, Any], ctx: PodContext, mode: int) -> dict[str, FileProjection]:
    out = {}
    for it in src.get("items") or []:
        if it.get("fieldRef"):
            value = field_value(ctx.pod, str(it["fieldRef"].get("fieldPath", "")), ctx.host_ip)
        elif it.get("resourceFieldRef"):
            ref = it["resourceFieldRef"]
            value = resource_value(ctx.pod, str(ref.get("containerName", "")), str(ref.get("resource", "")),
                                   ref.get("divisor"), ctx.allocatable)
        else:
            continue
        out[str(it.get("path", ""))] = FileProjection(value.encode(), _mode(it, mode))
    return out


def payload(volume: Mapping[str, Any], ctx: PodContext) -> dict[str, FileProjection]:
    """The files of an API-data volume; ValueError/ContainerConfigError with the plugin's reason."""
    if "configMap" in volume:
        src = volume["configMap"] or {}
        return _configmap(src, ctx, int(src.get("defaultMode", DEFAULT_MODE)))
    if "secret" in volume:
        src = volume["secret"] or {}
        return _secret(src, ctx, int(src.get("defaultMode", DEFAULT_MODE)), "secretName")
    if "downwardAPI" in volume:
        src = volume["downwardAPI"] or {}
        return _downward(src, ctx, int(src.get("defaultMode", DEFAULT_MODE)))
    src = volume.get("projected") or {}
    mode = int(src.get("defaultMode", DEFAULT_MODE))
    out: dict[str, FileProjection] = {}
    for source in src.get("sources") or []:
        if source.get("configMap") is not None:
            out.update(_configmap(source["configMap"], ctx, mode))
        elif source.get("secret") is not None:
            out.update(_secret(source["secret"], ctx, mode, "name"))
        elif source.get("downwardAPI") is not None:
            out.update(_downward(source["downwardAPI"], ctx, mode))
        elif source.get("serviceAccountToken") is not None:
            sat = source["serviceAccountToken"]
            token = ctx.sa_token(str(sat.get("audience") or "")) if ctx.sa_token is not None else PLACEHOLDER_TOKEN
            out[str(sat.get("path", "token"))] = FileProjection(token, mode)
    return out


def volume_kind(volume: Mapping[str, Any]) -> str:
    return next((k for k in volume if k != "name"), "emptyDir")


def _mounted(path: str) -> bool:
    return os.path.ismount(path)


def _umount(path: str) -> None:
    subprocess.run(["umount", "-l", path], check=False, capture_output=True)


class PodVolumes:
    """The volume directories of the pods of one cluster."""

    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        self.root = os.path.join(state_dir, "pods")
        self._api: dict[str, dict[str, Mapping[str, Any]]] = {}  # pod dir -> API-data volumes set up

    def pod_dir(self, pod_part: str) -> str:
        return os.path.join(self.root, pod_part)

    def _hostpath(self, node_part: str, volume: Mapping[str, Any]) -> str:
        hp = volume["hostPath"] or {}
        path = os.path.normpath("/" + str(hp.get("path", ""))).lstrip("/")
        typ = hp.get("type") or ""
        if typ in ("Socket", "CharDevice", "BlockDevice"):
            raise ValueError(f"hostPath type {typ} is not emulated: netsim never touches the host's filesystem")
        target = os.path.join(self.state_dir, "nodes", node_part, "hostpath", path)
        if typ in ("File", "FileOrCreate"):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                with open(target, "a"):
                    pass
                os.chmod(target, 0o644)
        else:
            os.makedirs(target, exist_ok=True)
            os.chmod(target, 0o755)
        return target

    def setup(self, pod_part: str, node_part: str, volume: Mapping[str, Any], ctx: PodContext) -> str:
        """Make one volume (idempotent); its directory (or file). VolumeError when it cannot be made."""
        name = str(volume.get("name", ""))
        kind = volume_kind(volume)
        base = os.path.join(self.pod_dir(pod_part), "volumes")
        path = os.path.join(base, name)
        try:
            if kind in API_DATA:
                atomic_writer.write(path, payload(volume, ctx))
                self._api.setdefault(pod_part, {})[name] = volume
                return path
            if kind == "hostPath":
                return self._hostpath(node_part, volume)
            if kind == "emptyDir" or kind in DIR_LIKE:
                new = not os.path.isdir(path)
                os.makedirs(path, exist_ok=True)
                ed = volume.get("emptyDir") or {}
                if new and kind == "emptyDir" and ed.get("medium") == "Memory" and not _mounted(path):
                    opts = "mode=0777"
                    if ed.get("sizeLimit") is not None:
                        opts += f",size={int(parse_quantity(ed['sizeLimit']))}"
                    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path], check=True,
                                   capture_output=True)
                os.chmod(path, 0o777)
                return path
        except (ValueError, ContainerConfigError, OSError, subprocess.CalledProcessError) as exc:
            raise VolumeError(name, str(exc)) from None
        raise VolumeError(name, f"volume type {kind} is not emulated by netsim")

    def update(self, pod_part: str, ctx: PodContext) -> list[str]:
        """Rewrite the pod's API-data volumes from the current objects (the kubelet's sync); returns the
        names of the volumes that changed. A volume whose source is gone keeps its last files, as the
        kubelet does when a refresh fails."""
        changed = []
        for name, volume in (self._api.get(pod_part) or {}).items():
            try:
                if atomic_writer.write(os.path.join(self.pod_dir(pod_part), "volumes", name), payload(volume, ctx)):
                    changed.append(name)
            except Exception:  # noqa: BLE001 - one volume that cannot be refreshed keeps its files; the rest go on
                continue
        return changed

    def pods(self) -> list[str]:
        return list(self._api)

    def has(self, pod_part: str) -> bool:
        """Whether the pod has API-data volumes here (to update when their sources change)."""
        return pod_part in self._api

    def teardown(self, pod_part: str) -> None:
        """Remove a pod's volumes (unmounting its memory-backed emptyDirs first)."""
        self._api.pop(pod_part, None)
        d = self.pod_dir(pod_part)
        vols = os.path.join(d, "volumes")
        if os.path.isdir(vols):
            for name in os.listdir(vols):
                if _mounted(os.path.join(vols, name)):
                    _umount(os.path.join(vols, name))
        shutil.rmtree(d, ignore_errors=True)


def container_mounts(container: Mapping[str, Any], volumes: Mapping[str, Mapping[str, Any]],
                     paths: Mapping[str, str], env: Mapping[str, str]) -> list[dict[str, Any]]:
    """What container_init binds: {src, dst, ro} per volumeMount, subPath(Expr) resolved to the file or
    directory it names at start (not updated later, as upstream: subPath mounts never see updates)."""
    out = []
    for vm in container.get("volumeMounts") or []:
        name = str(vm.get("name", ""))
        if name not in paths:
            continue
        src = paths[name]
        sub = vm.get("subPath") or ""
        if vm.get("subPathExpr"):
            sub = expand(str(vm["subPathExpr"]), mapping_for(env))
        if sub:
            src = os.path.realpath(os.path.join(src, sub))
            if not src.startswith(os.path.realpath(paths[name]) + os.sep) and src != os.path.realpath(paths[name]):
                raise VolumeError(name, f"subPath {sub!r} escapes the volume")
            if not os.path.exists(src):
                os.makedirs(src, exist_ok=True)  # the kubelet creates a missing subPath as a directory
                os.chmod(src, 0o777)
        ro = bool(vm.get("readOnly")) or volume_kind(volumes.get(name) or {}) in API_DATA
        out.append({"src": src, "dst": str(vm.get("mountPath", "")), "ro": ro, "file": os.path.isfile(src)})
    return out
