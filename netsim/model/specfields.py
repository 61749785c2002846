"""Field checks shared by the manifest kinds: unknown fields, ports, int-or-string, names, IPs.

These sit on top of `netsim.model.meta.Fields` so that every check names the file, object and field path.

Unknown fields: the API server in its default (non-strict) mode drops fields it does not know and warns;
`kubectl apply --validate=strict` rejects them. We follow the strict behaviour because a typo such as
`containerport` or `targetport` otherwise silently changes what the emulator builds. Fields that Kubernetes
knows but netsim does not model (volumes, resources, securityContext...) are accepted and carried along
verbatim ("passthrough"), so real-world manifests load and `to_dict()` gives them back.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from netsim.model.errors import Source, SpecError
from netsim.model.meta import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    Fields,
    ObjectMeta,
    object_name,
    parse_metadata,
)

PROTOCOLS = ("TCP", "UDP", "SCTP")

# IANA_SVC_NAME (apimachinery validation.IsValidPortName): 1-15 chars, lowercase alphanumerics and '-',
# at least one letter, no leading/trailing '-' and no '--'.
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_HAS_LETTER = re.compile(r"[a-z]")

TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})


def check_fields(f: Fields, modelled: Iterable[str], passthrough: Iterable[str] = ()) -> dict[str, Any]:
    """Reject fields neither modelled nor known to Kubernetes; return the present passthrough ones."""
    modelled = set(modelled)
    passthrough = set(passthrough)
    known = modelled | passthrough
    for key in f.data:
        if key not in known:
            import difflib  # the error path only: a "did you mean" for an unknown field
            hint = difflib.get_close_matches(str(key), sorted(known), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise f.error(str(key), f"unknown field {key!r}{suffix}")
    return {k: f.data[k] for k in sorted(passthrough) if k in f.data}


def port_name_problem(name: str) -> str | None:
    """Why `name` is not a valid IANA_SVC_NAME (container port names, named targetPorts), or None."""
    if len(name) > 15:
        return f"port name {name!r} must be at most 15 characters"
    if not _IANA_SVC_NAME.match(name) or "--" in name:
        return f"port name {name!r} must be lowercase alphanumerics and '-', not starting or ending with '-'"
    if not _HAS_LETTER.search(name):
        return f"port name {name!r} must contain at least one letter"
    return None


def port(f: Fields, key: str, *, required: bool = False, minimum: int = 1) -> int | None:
    """A port number 1..65535 (or `minimum`..65535)."""
    return f.int(key, required=required, minimum=minimum, maximum=65535)


def port_name(f: Fields, key: str, *, required: bool = False) -> str | None:
    name = f.str(key, required=required)
    if name is None:
        return None
    problem = port_name_problem(name)
    if problem:
        raise f.error(key, problem)
    return name


def port_or_name(f: Fields, key: str, *, required: bool = False) -> int | str | None:
    """An IntOrString port: a number 1..65535 or an IANA_SVC_NAME (a quoted number counts as a number)."""
    v = f.data.get(key)
    if v is None:
        if required:
            raise f.error(key, "is required")
        return None
    if isinstance(v, str) and v.isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise f.error(key, f"must be a port number or a port name, got {v!r}")
    if isinstance(v, int):
        if not 1 <= v <= 65535:
            raise f.error(key, f"port {v} is out of range 1-65535")
        return v
    problem = port_name_problem(v)
    if problem:
        raise f.error(key, problem)
    return v


def protocol(f: Fields, key: str = "protocol") -> str:
    """Protocol, defaulting to TCP as SetDefaults_Service / SetDefaults_Pod do."""
    return f.str(key, "TCP", choices=PROTOCOLS)


_PERCENT = re.compile(r"[0-9]+%")
# apimachinery's IsValidPercent message (k8s.io/apimachinery/pkg/util/validation IsValidPercent)
PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
               "'93%', regex used for validation is '[0-9]+%')")


def int_or_percent(f: Fields, key: str, default: Any, *, max_percent: int | None = None) -> Any:
    """An IntOrString that is a non-negative int or "N%", as kube-apiserver's ValidatePositiveIntOrPercent
    (pkg/apis/apps/validation, used for Deployments' and DaemonSets' maxSurge/maxUnavailable and
    PodDisruptionBudgets' minAvailable/maxUnavailable) and IsNotMoreThan100Percent when `max_percent`. A
    string must be a percentage: "5" is refused as the API server refuses it (an IntOrString decoded from a
    JSON string is a string). `default` when the field is absent."""
    v = f.data.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise f.error(key, f"must be an integer or percentage (e.g '5%'), got {v!r}")
    if isinstance(v, int):
        if v < 0:
            raise f.error(key, f"must be greater than or equal to 0, got {v}")
        return v
    if not _PERCENT.fullmatch(v):
        raise f.error(key, f"{v!r}: {PERCENT_MSG}")
    if max_percent is not None and int(v[:-1]) > max_percent:
        raise f.error(key, f"{v!r}: must not be greater than {max_percent}%")
    return f"{int(v[:-1])}%"


def is_zero(value: int | str) -> bool:
    return value in (0, "0%")


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Scale an int-or-percent against `total` as apimachinery's GetScaledValueFromIntOrPercent does.

    Deployments round maxSurge up and maxUnavailable down (pkg/controller/deployment/util ResolveFenceposts).
    """
    if isinstance(value, int):
        return value
    pct = int(value.rstrip("%"))
    scaled, rem = divmod(pct * total, 100)
    return scaled + 1 if round_up and rem else scaled


def dns_label(f: Fields, key: str, *, required: bool = False, what: str = "name") -> str | None:
    v = f.str(key, required=required)
    if v is not None and (len(v) > 63 or not DNS1123_LABEL.match(v)):
        raise f.error(key, f"{what} {v!r} must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63)")
    return v


def dns_subdomain(f: Fields, key: str, *, required: bool = False, what: str = "name") -> str | None:
    v = f.str(key, required=required)
    if v is not None and (len(v) > 253 or not DNS1123_SUBDOMAIN.match(v)):
        raise f.error(key, f"{what} {v!r} must be a lowercase RFC 1123 subdomain")
    return v


def str_list(f: Fields, key: str) -> tuple[str, ...]:
    items = f.list(key)
    for i, v in enumerate(items):
        if not isinstance(v, str):
            raise f.error(f"{key}[{i}]", f"must be a string, got {type(v).__name__} {v!r}")
    return tuple(items)


def str_map(f: Fields, key: str) -> dict[str, str]:
    v = f.get(key, {})
    if not isinstance(v, Mapping) or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        raise f.error(key, "must be a mapping of strings to strings")
    return dict(v)


def ip_address(f: Fields, key: str, value: Any) -> str:
    """Check one IP address literal; `key` is the field path to name in the error."""
    if not isinstance(value, str):
        raise f.error(key, f"must be an IP address string, got {value!r}")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise f.error(key, f"{value!r} is not a valid IP address") from None


def special_ip_problem(value: str) -> str | None:
    """Why an address may not be an external IP or an endpoint, or None: core/v1 validation
    ValidateNonSpecialIP refuses the unspecified address, loopback, link-local unicast and link-local
    multicast (unspecified and loopback are nonsensical, link-local is for node-centric services)."""
    ip = ipaddress.ip_address(value)
    if ip.is_unspecified:
        return f"{value!r} may not be unspecified ({value})"
    if ip.is_loopback:
        return f"{value!r} may not be in the loopback range (127.0.0.0/8, ::1/128)"
    if ip.is_link_local and not ip.is_multicast:
        return f"{value!r} may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    link_local_multicast = ipaddress.ip_network("224.0.0.0/24" if ip.version == 4 else "ff02::/16")
    if ip in link_local_multicast:
        return f"{value!r} may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
    return None


def non_special_ip(f: Fields, key: str, value: Any) -> str:
    """An IP address that ValidateNonSpecialIP accepts (external IPs, endpoint addresses)."""
    ip = ip_address(f, key, value)
    problem = special_ip_problem(ip)
    if problem:
        raise f.error(key, problem)
    return ip


def cidr(f: Fields, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise f.error(key, f"must be a CIDR string, got {value!r}")
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise f.error(key, f"{value!r} is not a valid CIDR") from None


def drop_none(d: dict[str, Any]) -> dict[str, Any]:
    """A dict without None values (and without empty containers), for compact to_dict output."""
    return {k: v for k, v in d.items() if v is not None and v != {} and v != [] and v != ()}


# Here rather than in netsim.model.pod: every kind's parser starts with it, and a kind that has no pods
# (EndpointSlice, Namespace) should not import the Pod model with it (what `netsim apply` of one slice
# imports, issue #16 item 2).
def _raw_object_name(doc: Any, kind: str, namespaced: bool) -> str:
    md = doc.get("metadata") if isinstance(doc, Mapping) else None
    name = md.get("name") if isinstance(md, Mapping) else None
    if not isinstance(name, str):
        return kind
    ns = md.get("namespace")
    if not namespaced:
        return f"{kind} {name}"
    return f"{kind} {ns if isinstance(ns, str) else 'default'}/{name}"


def object_fields(doc: Any, source: Source, kind: str, *, namespaced: bool = True,
                  top_level: frozenset[str] = TOP_LEVEL) -> tuple[ObjectMeta, Fields]:
    """Common start of every kind's parser: metadata, then top-level fields checked, as Fields at root."""
    try:
        meta = parse_metadata(doc, source=source, kind=kind, namespaced=namespaced)
    except SpecError as e:
        # parse_metadata names the object "Kind/name"; name it as every other error does.
        raise SpecError(e.message, source=e.source, obj=_raw_object_name(doc, kind, namespaced),
                        field=e.field) from None
    root = Fields(doc, source=source, obj=object_name(kind, meta))
    check_fields(root, top_level)
    return meta, root
