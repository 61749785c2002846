"""Validation of what a container takes from elsewhere: env valueFrom, envFrom, volumes and volumeMounts.

As the API server checks them (pkg/apis/core/validation/validation.go validateEnvVarValueFrom,
validateObjectFieldSelector, validateContainerResourceFieldSelector, validateEnvFrom, validateVolumes,
validateVolumeSource, ValidateVolumeMounts), with its wording ("Required value", "Unsupported value",
"Not found", "Duplicate value", "must specify one of ..."). Errors name the file, the object and the
field path; the apply then exits 2 with nothing applied.
"""

from __future__ import annotations

import re

from netsim.model.meta import Fields

ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
VOLUME_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
                      "metadata.annotations")
RESOURCE_PATHS = ("limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory",
                  "requests.ephemeral-storage")
VOLUME_SOURCES = ("hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
                  "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
                  "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
                  "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
                  "image")
CPU_DIVISORS = ("1m", "1")
MEMORY_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _field_ref(f: Fields, allowed: tuple[str, ...]) -> None:
    path = f.get("fieldPath")
    if not isinstance(path, str) or not path:
        raise f.error("fieldPath", "Required value")
    if f.has("apiVersion") and f.get("apiVersion") != "v1":
        raise f.error("apiVersion", f'Unsupported value: "{f.get("apiVersion")}": supported values: "v1"')
    if _SUBSCRIPT.match(path) or path in allowed:
        return
    raise f.error("fieldPath", f'Unsupported value: "{path}": supported values: {_quoted(allowed)}')


def _resource_ref(f: Fields, *, container_required: bool) -> None:
    if container_required and not f.get("containerName"):
        raise f.error("containerName", "Required value")
    resource = f.get("resource")
    if not resource:
        raise f.error("resource", "Required value")
    if resource not in RESOURCE_PATHS:
        raise f.error("resource", f'Unsupported value: "{resource}": supported values: {_quoted(RESOURCE_PATHS)}')
    divisor = f.get("divisor")
    if divisor is not None:
        # validateContainerResourceDivisor: the unit quantities only
        allowed = CPU_DIVISORS if str(resource).endswith(".cpu") else MEMORY_DIVISORS
        if str(divisor) not in allowed:
            raise f.error("divisor", f'Unsupported value: "{divisor}": supported values: {_quoted(allowed)}')


def _key_ref(f: Fields) -> None:
    if not f.get("name"):
        raise f.error("name", "Required value")
    key = f.get("key")
    if not key:
        raise f.error("key", "Required value")
    if not isinstance(key, str) or not _CONFIG_KEY.match(key) or key in (".", "..") or len(key) > 253:
        raise f.error("key", f'Invalid value: "{key}": a valid config key must consist of alphanumeric '
                             "characters, '-', '_' or '.'")


def validate_value_from(ef: Fields) -> None:
    """One env var's valueFrom (validateEnvVarValueFrom)."""
    vf = ef.map("valueFrom")
    if vf is None:
        return
    if ef.get("value"):
        raise ef.error("valueFrom", "Invalid value: \"\": may not be specified when `value` is not empty")
    sources = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef") if vf.has(k)]
    if not sources:
        raise vf.error(None, "Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, "
                             "`configMapKeyRef` or `secretKeyRef`")
    if len(sources) > 1:
        raise vf.error(sources[1], "Invalid value: \"\": may not have more than one field specified at a time")
    src = vf.map(sources[0])
    if src is None:
        return
    if sources[0] == "fieldRef":
        _field_ref(src, ENV_FIELD_PATHS)
    elif sources[0] == "resourceFieldRef":
        _resource_ref(src, container_required=False)
    else:
        _key_ref(src)


def validate_env_from(f: Fields) -> None:
    """A container's envFrom (validateEnvFrom)."""
    from netsim.model.pod import env_var_name_problem
    for i, raw in enumerate(f.list("envFrom")):
        ef = f.sub(raw, f".envFrom[{i}]")
        refs = [k for k in ("configMapRef", "secretRef") if ef.has(k)]
        if len(refs) != 1:
            raise ef.error(None, "Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`"
                           if not refs else "Invalid value: \"\": may not have more than one field specified at a time")
        ref = ef.map(refs[0])
        if ref is not None and not ref.get("name"):
            raise ref.error("name", "Required value")
        prefix = ef.get("prefix")
        if prefix and env_var_name_problem(str(prefix)):
            raise ef.error("prefix", env_var_name_problem(str(prefix)) or "")


def path_problem(path: str) -> str | None:
    """validateLocalDescendingPath and the volume item rules: relative, no '..' element, not '..'-prefixed."""
    if path.startswith("/"):
        return "must be a relative path"
    if ".." in path.split("/"):
        return "must not contain '..'"
    if path.startswith(".."):
        return "must not start with '..'"
    return None


def _items(vf: Fields, what: str) -> None:
    for j, raw in enumerate(vf.list("items")):
        it = vf.sub(raw, f".items[{j}]")
        if what == "downwardAPI":
            if it.has("fieldRef"):
                _field_ref(it.map("fieldRef") or it, VOLUME_FIELD_PATHS)
            elif it.has("resourceFieldRef"):
                _resource_ref(it.map("resourceFieldRef") or it, container_required=True)
        elif not it.get("key"):
            raise it.error("key", "Required value")
        path = it.get("path")
        if not path:
            raise it.error("path", "Required value")
        problem = path_problem(str(path))
        if problem:
            raise it.error("path", f'Invalid value: "{path}": {problem}')


def validate_volumes(f: Fields) -> set[str]:
    """spec.volumes (validateVolumes): names unique DNS labels, exactly one source each; their names."""
    names: set[str] = set()
    for i, raw in enumerate(f.list("volumes")):
        vf = f.sub(raw, f".volumes[{i}]")
        name = vf.get("name")
        if not name:
            raise vf.error("name", "Required value")
        if not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.match(name):
            raise vf.error("name", f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower '
                                   "case alphanumeric characters or '-', and must start and end with an "
                                   "alphanumeric character")
        if name in names:
            raise vf.error("name", f'Duplicate value: "{name}"')
        names.add(name)
        sources = [k for k in VOLUME_SOURCES if k in vf.data]
        if not sources:
            raise vf.error(None, "must specify a volume type")
        if len(sources) > 1:
            raise vf.error(sources[1], "may not specify more than 1 volume type")
        src = vf.map(sources[0]) if isinstance(vf.data.get(sources[0]), dict) else None
        if src is None:
            continue
        if sources[0] == "configMap" and not src.get("name"):
            raise src.error("name", "Required value")
        if sources[0] == "secret" and not src.get("secretName"):
            raise src.error("secretName", "Required value")
        if sources[0] == "persistentVolumeClaim" and not src.get("claimName"):
            raise src.error("claimName", "Required value")
        if sources[0] == "hostPath" and not src.get("path"):
            raise src.error("path", "Required value")
        if sources[0] in ("configMap", "secret", "downwardAPI"):
            _items(src, sources[0])
        if sources[0] == "projected":
            for j, s in enumerate(src.list("sources")):
                sf = src.sub(s, f".sources[{j}]")
                for kind in ("configMap", "secret", "downwardAPI"):
                    sub = sf.map(kind)
                    if sub is not None:
                        _items(sub, kind)
    return names


def validate_volume_mounts(cf: Fields, volumes: set[str]) -> None:
    """A container's volumeMounts (ValidateVolumeMounts): a known volume, a mountPath unique in the
    container, a relative subPath without '..'."""
    seen: set[str] = set()
    for i, raw in enumerate(cf.list("volumeMounts")):
        mf = cf.sub(raw, f".volumeMounts[{i}]")
        name = mf.get("name")
        if not name:
            raise mf.error("name", "Required value")
        if name not in volumes:
            raise mf.error("name", f'Not found: "{name}"')
        path = mf.get("mountPath")
        if not path:
            raise mf.error("mountPath", "Required value")
        if path in seen:
            raise mf.error("mountPath", f'Invalid value: "{path}": must be unique')
        seen.add(path)
        sub = mf.get("subPath")
        if sub and (str(sub).startswith("/") or ".." in str(sub).split("/")):
            raise mf.error("subPath", f'Invalid value: "{sub}": must be a relative path without \'..\'')
        if sub and mf.get("subPathExpr"):
            raise mf.error("subPathExpr", f'Invalid value: "{mf.get("subPathExpr")}": subPathExpr and subPath '
                                          "are mutually exclusive")


def validate_container_restart_policy(cf: Fields, *, init: bool) -> None:
    """A container's restartPolicy (validateInitContainers / validateContainers): an init container may
    say `Always` (a sidecar) and nothing else; an app container may not set it. Probes are for sidecars
    and app containers only."""
    policy = cf.get("restartPolicy")
    if not init:
        if policy is not None:
            raise cf.error("restartPolicy", "Forbidden: may not be set for non-init containers")
        return
    if policy is not None and policy != "Always":
        raise cf.error("restartPolicy", f'Unsupported value: "{policy}": supported values: "Always"')
    if policy is None:
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if cf.has(probe):
                raise cf.error(probe, "Forbidden: may not be set for init containers without restartPolicy=Always")
