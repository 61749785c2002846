"""Probe selectors: who sends (`ns/pod`, `ns/*`, `*/*`, `node/NAME`, `host/NAME`) and what is reached
(those, plus `svc/NS/NAME`, a virtual IP, `IP:PORT` such as a NodePort), as docs/architecture.md defines them.

Pure parsing and matching, shared by the scenario format, the `netsim probe`/`verify`/`trace` CLI, the
Python API (`netsim.Cluster.sources`) and trace's endpoint resolution: it lives in the model layer so
all of them import it downwards. Parsing raises
`SelectorError` (a ValueError) with a message only; callers that know the file and field wrap it into a
SpecError (see `netsim.scenario.format`), the CLI turns it into a usage error.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from netsim.model.errors import UsageError
from netsim.model.meta import DNS1123_LABEL, DNS1123_SUBDOMAIN

# What a selector names.
POD = "pod"            # one pod: ns/name
PODS = "pods"          # a wildcard over pods: ns/* or */*
NODE = "node"          # node/NAME (the node's own namespace)
HOST = "host"          # host/NAME (an external host)
SERVICE = "service"    # svc/NS/NAME (targets only)
IP = "ip"              # a bare IPv4 address, e.g. a ClusterIP or LoadBalancer IP (targets only)
IP_PORT = "ip-port"    # IP:PORT, e.g. NODEIP:NODEPORT (targets only)

SOURCE_KINDS = (POD, PODS, NODE, HOST)
TARGET_KINDS = (POD, PODS, NODE, HOST, SERVICE, IP, IP_PORT)


class SelectorError(UsageError, ValueError):
    """A selector that cannot be parsed; the message says what the accepted forms are (a usage error, exit 2,
    wherever it surfaces)."""


@dataclass(frozen=True)
class Selector:
    """One parsed selector. `text` is its canonical spelling (what reports show)."""

    kind: str
    namespace: str | None = None  # pods, services; "*" for every namespace
    name: str | None = None       # pod, node, host, service name; "*" for every pod
    ip: str | None = None
    port: int | None = None

    @property
    def text(self) -> str:
        if self.kind in (POD, PODS):
            return f"{self.namespace}/{self.name}"
        if self.kind == NODE:
            return f"node/{self.name}"
        if self.kind == HOST:
            return f"host/{self.name}"
        if self.kind == SERVICE:
            return f"svc/{self.namespace}/{self.name}"
        if self.kind == IP:
            return str(self.ip)
        return f"{self.ip}:{self.port}"

    def __str__(self) -> str:
        return self.text

    @property
    def is_wildcard(self) -> bool:
        return self.kind == PODS

    @property
    def is_service_like(self) -> bool:
        """Targets reached through kube-proxy's NAT (a VIP, a Service, a NodePort)."""
        return self.kind in (SERVICE, IP, IP_PORT)

    def matches(self, ident: str) -> bool:
        """Does a concrete identity as probe results name it (`ns/pod`, `node/x`, `svc/ns/n`, an IP) match?"""
        if self.kind == PODS:
            if ident.startswith(("node/", "host/", "svc/")) or ident.count("/") != 1:
                return False
            ns, _, _ = ident.partition("/")
            return self.namespace == "*" or ns == self.namespace
        return ident == self.text


_POD_HELP = "ns/pod, ns/*, */*, node/NAME or host/NAME"
_TARGET_HELP = f"{_POD_HELP}, svc/NS/NAME, an IPv4 address or IP:PORT"


def _check_label(value: str, what: str, text: str) -> None:
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        raise SelectorError(f"{text!r}: {what} {value!r} must be a lowercase RFC 1123 label")


def _check_subdomain(value: str, what: str, text: str) -> None:
    if len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        raise SelectorError(f"{text!r}: {what} {value!r} must be a lowercase RFC 1123 subdomain")


def _ipv4(value: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return None


def parse_source(text: object) -> Selector:
    """A probe source: `ns/pod`, `ns/*`, `*/*`, `node/NAME`, `host/NAME`."""
    sel = _parse(text, _POD_HELP)
    if sel.kind not in SOURCE_KINDS:
        raise SelectorError(f"{sel.text!r} cannot be a source; sources are {_POD_HELP}")
    return sel


def parse_target(text: object) -> Selector:
    """A probe target: any source form, `svc/NS/NAME`, an IPv4 address (a VIP) or `IP:PORT`."""
    return _parse(text, _TARGET_HELP)


def parse_pod(text: object) -> Selector:
    """Exactly one pod, `ns/name` (for steps that act on one pod: dns, kill)."""
    sel = _parse(text, "ns/pod")
    if sel.kind != POD:
        raise SelectorError(f"{sel.text!r} must name one pod as ns/name")
    return sel


_PORT_SUFFIX = re.compile(r"^(?P<head>.+):(?P<port>\d+)$")


def split_port(text: object) -> tuple[str, int | None]:
    """`svc/ns/web:80` -> ("svc/ns/web", 80); a target with no `:PORT` -> (text, None).

    `IP:PORT` stays whole when the caller parses it as a target; this is for `dst[:port]` fields (trace)
    where the port is separate from what it is sent to.
    """
    if not isinstance(text, str):
        raise SelectorError(f"must be a string such as svc/default/web:80, got {type(text).__name__}")
    m = _PORT_SUFFIX.match(text.strip())
    if not m:
        return text.strip(), None
    port = int(m.group("port"))
    if not 1 <= port <= 65535:
        raise SelectorError(f"{text!r}: port {port} is not between 1 and 65535")
    return m.group("head"), port


def _parse(text: object, help_text: str) -> Selector:
    if not isinstance(text, str) or not text.strip():
        raise SelectorError(f"must be a selector string ({help_text}), got {text!r}")
    t = text.strip()
    ip = _ipv4(t)
    if ip:
        return Selector(IP, ip=ip)
    m = _PORT_SUFFIX.match(t)
    if m and _ipv4(m.group("head")):
        port = int(m.group("port"))
        if not 1 <= port <= 65535:
            raise SelectorError(f"{t!r}: port {port} is not between 1 and 65535")
        return Selector(IP_PORT, ip=_ipv4(m.group("head")), port=port)
    parts = t.split("/")
    if parts[0] == "svc":
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise SelectorError(f"{t!r}: a Service is svc/NAMESPACE/NAME")
        _check_label(parts[1], "namespace", t)
        _check_label(parts[2], "service name", t)
        return Selector(SERVICE, namespace=parts[1], name=parts[2])
    if parts[0] in ("node", "host") and len(parts) == 2:
        if parts[0] == "host":
            _check_label(parts[1], "host name", t)
        else:
            _check_subdomain(parts[1], "node name", t)
        return Selector(NODE if parts[0] == "node" else HOST, name=parts[1])
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise SelectorError(f"{t!r} is not a selector; use {help_text}")
    ns, name = parts
    if ns == "*":
        if name != "*":
            raise SelectorError(f"{t!r}: a pod name needs its namespace; use */* for every pod or ns/{name}")
        return Selector(PODS, namespace="*", name="*")
    _check_label(ns, "namespace", t)
    if name == "*":
        return Selector(PODS, namespace=ns, name="*")
    _check_subdomain(name, "pod name", t)
    return Selector(POD, namespace=ns, name=name)
