"""Cluster DNS records, answered as CoreDNS's kubernetes plugin answers them (pure: no sockets, no kernel).

What is served (the Kubernetes DNS schema, github.com/kubernetes/dns docs/specification.md, as extended by
CoreDNS; behaviour read in coredns/coredns plugin/kubernetes/{kubernetes.go,parse.go,reverse.go,ns.go,
handler.go,object/endpoint.go} and plugin/backend_lookup.go):

- `<svc>.<ns>.svc.<zone>` A/AAAA: the ClusterIP(s); for a headless service the IPs of its ready endpoints
  (NXDOMAIN when it has none); ExternalName services give a CNAME to spec.externalName.
- `<host>.<svc>.<ns>.svc.<zone>` A: one endpoint, `<host>` being the endpoint's hostname, else its IP with
  dashes (CoreDNS endpointHostname). This works for any service, not only headless ones (CoreDNS does so).
  A StatefulSet pod gets its name this way: its spec.hostname/subdomain make the EndpointSlice controller
  set the endpoint hostname; when a slice lacks it we fill it from the pod, as that controller would.
- `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV: priority 0, weight 100/N (N = matching entries, as CoreDNS
  computes before de-duplication), the service port and the service name as target for ClusterIP services;
  for headless ones one SRV per ready endpoint with the endpoint port and `<host>.<svc>...` as target. The
  targets' addresses go in the additional section. A plain `<svc>.<ns>.svc.<zone>` SRV query lists every
  port (CoreDNS treats missing port/protocol labels as wildcards).
- `<a>-<b>-<c>-<d>.<ns>.pod.<zone>` A, pods mode `insecure` (kubeadm's default Corefile; answered for any
  address in an existing namespace), `verified` (only for a pod with that IP in that namespace) or
  `disabled` (the plugin's own default: NXDOMAIN).
- PTR in in-addr.arpa / ip6.arpa: a service's ClusterIP -> `<svc>.<ns>.svc.<zone>`; otherwise every
  service endpoint with that IP -> `<host>.<svc>.<ns>.svc.<zone>`.
- `dns-version.<zone>` TXT "1.1.0" (TTL 28800); `ns.dns.<zone>` A and the apex NS name the DNS service
  (kube-system/kube-dns by default); apex SOA.

Readiness: CoreDNS serves only endpoints whose `ready` condition is true or unset. The EndpointSlice
controller marks every endpoint ready when the service has publishNotReadyAddresses; we apply that rule
here too, so a slice written without it gives the same answer.

Answers: TTL 5 (the plugin's defaultTTL; kubeadm's Corefile sets `ttl 30`). Unknown names in a served zone
are NXDOMAIN, existing names with no record of the asked type NOERROR with no answers (NODATA); both carry
the zone's SOA in the authority section as CoreDNS writes it (`ns.dns.<zone>. hostmaster.<zone>. serial
7200 1800 86400 <ttl>`, record TTL min(ttl, 300)). Quirks kept from CoreDNS: an existing namespace
(`<ns>.svc.<zone>`), `svc.<zone>`, `pod.<zone>` and the apex are NODATA; non-PTR queries for reverse names
are NXDOMAIN; SOA is only answered at the apex; AXFR/IXFR are REFUSED.

No upstream: netsim has no forwarder, so names outside the served zones get REFUSED (what a CoreDNS server
block answers for a zone it does not serve), PTR misses are NXDOMAIN (the default Corefile would fall
through to the upstream), and an ExternalName CNAME pointing outside the cluster is returned alone
(CoreDNS would append whatever the upstream resolver answers for the target).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from netsim.model.endpointslice import EndpointSlice
from netsim.model.podview import PodView
from netsim.model.service import Service

DEFAULT_DOMAIN = "cluster.local"
DEFAULT_TTL = 5  # coredns plugin/kubernetes kubernetes.go defaultTTL
DNS_SCHEMA_VERSION = "1.1.0"  # coredns plugin/kubernetes kubernetes.go DNSSchemaVersion
VERSION_TTL = 28800
REVERSE_ZONES = ("in-addr.arpa.", "ip6.arpa.")
POD_MODES = ("disabled", "insecure", "verified")
# Namespaces every cluster has, so their names exist even before an object is stored in them.
BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})

NOERROR, NXDOMAIN, SERVFAIL, REFUSED = "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"


# --------------------------------------------------------------------------------------------- answers

class Srv(NamedTuple):
    priority: int
    weight: int
    port: int
    target: str


class Soa(NamedTuple):
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True)
class Record:
    """One resource record. `data` is an address (A/AAAA), a name ending in "." (CNAME/PTR/NS), the text
    (TXT), or a Srv / Soa tuple."""

    name: str
    type: str
    ttl: int
    data: Any

    def __str__(self) -> str:
        data = " ".join(str(v) for v in self.data) if isinstance(self.data, tuple) else self.data
        return f"{self.name} {self.ttl} IN {self.type} {data}"


@dataclass(frozen=True)
class Answer:
    rcode: str
    answers: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    authoritative: bool = True

    def data(self, rtype: str | None = None) -> list[Any]:
        """The data of the answer records (of one type), handy in tests and probes."""
        return [r.data for r in self.answers if rtype is None or r.type == rtype]


# -------------------------------------------------------------------------------------------- snapshot

# What DNS needs of a pod (addresses, hostname/subdomain for endpoint names) is the one pod view of the
# model (netsim.model.podview); the old name stays.
PodInfo = PodView


@dataclass(frozen=True)
class Snapshot:
    """The cluster state DNS answers from. `namespaces` None: every namespace an object is in, plus the
    built-in ones. `serial` is the SOA serial (CoreDNS uses the time of the last API change)."""

    services: tuple[Service, ...] = ()
    slices: tuple[EndpointSlice, ...] = ()
    pods: tuple[PodInfo, ...] = ()
    namespaces: frozenset[str] | None = None
    serial: int = 0


# ---------------------------------------------------------------------------------------------- lookup

class _NameError(Exception):
    """The name does not exist (CoreDNS errNoItems / errNsNotExposed / errInvalidRequest)."""


@dataclass(frozen=True)
class _Entry:
    """CoreDNS's msg.Service: a host (an IP or a name), a port, and the domain the entry lives at."""

    host: str
    domain: str
    port: int = 0
    text: str | None = None


@dataclass
class _Request:
    """A parsed qname (CoreDNS parse.go recordRequest)."""

    pod_or_svc: str = ""
    namespace: str = ""
    service: str = ""
    endpoint: str = ""
    port: str = ""
    protocol: str = ""


@dataclass(frozen=True)
class _Endpoint:
    ip: str
    hostname: str  # the endpoint's name label: its hostname or its IP with dashes


@dataclass
class _ServiceView:
    svc: Service
    endpoints: list[_Endpoint] = field(default_factory=list)
    ports: list[tuple[str, str, int]] = field(default_factory=list)  # (name, protocol, port) from slices


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _ip_family(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def _dashed(ip: str) -> str:
    return ip.replace(".", "-") if "." in ip else ip.replace(":", "-")


def _reverse_address(name: str) -> str:
    """The address a reverse name stands for, "" when it is not a whole address (dnsutil.ExtractAddress...)."""
    if name.endswith(".in-addr.arpa."):
        labels = name[: -len(".in-addr.arpa.")].split(".")
        if len(labels) == 4:
            try:
                return str(ipaddress.IPv4Address(".".join(reversed(labels))))
            except ValueError:
                return ""
    elif name.endswith(".ip6.arpa."):
        nibbles = name[: -len(".ip6.arpa.")].split(".")
        if len(nibbles) == 32 and all(len(n) == 1 for n in nibbles):
            hexs = "".join(reversed(nibbles))
            try:
                return str(ipaddress.IPv6Address(":".join(hexs[i:i + 4] for i in range(0, 32, 4))))
            except ValueError:
                return ""
    return ""


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def _match_port(want_port: str, port: str, want_proto: str, proto: str) -> bool:
    """CoreDNS matchPortAndProtocol: an empty wanted value is a wildcard; comparisons ignore case."""
    return (want_port == "" or want_port == port.lower()) and (want_proto == "" or want_proto == proto.lower())


class ClusterDNS:
    """Answers queries from one snapshot; build a new one for every new snapshot (indexes are built once)."""

    def __init__(self, snapshot: Snapshot, domain: str = DEFAULT_DOMAIN, *, ttl: int = DEFAULT_TTL,
                 pods: str = "insecure", dns_service: tuple[str, str] = ("kube-system", "kube-dns")):
        if pods not in POD_MODES:
            raise ValueError(f"pods mode {pods!r} is not one of {', '.join(POD_MODES)}")
        self.snapshot = snapshot
        self.domain = _fqdn(domain.lower().strip(".")) if domain.strip(".") else "."
        self.zones = (self.domain, *REVERSE_ZONES)
        self.ttl = ttl
        self.pod_mode = pods
        self.dns_service = dns_service
        self._index()

    # -- indexes ------------------------------------------------------------------------------------
    def _index(self) -> None:
        snap = self.snapshot
        self._services: dict[tuple[str, str], _ServiceView] = {}
        for svc in snap.services:
            key = ((svc.meta.namespace or "default").lower(), svc.meta.name.lower())
            self._services[key] = _ServiceView(svc)
        pods_by_name = {(p.namespace, p.name): p for p in snap.pods}
        pods_by_ip: dict[tuple[str, str], PodInfo] = {}
        for p in snap.pods:
            for ip in p.ips:
                pods_by_ip.setdefault((p.namespace, ip), p)
        self._pod_ips: dict[str, list[PodInfo]] = {}
        for p in snap.pods:
            for ip in p.ips:
                self._pod_ips.setdefault(ip, []).append(p)
        for sl in sorted(snap.slices, key=lambda s: (s.meta.namespace or "default", s.meta.name)):
            ns = sl.meta.namespace or "default"
            view = self._services.get((ns, (sl.service_name or "").lower()))
            if view is None or sl.address_type not in ("IPv4", "IPv6"):
                continue
            for p in sl.ports:
                entry = (p.name or "", p.protocol, p.port if p.port is not None else -1)
                if entry not in view.ports:
                    view.ports.append(entry)
            if not sl.ports and ("", "", -1) not in view.ports:
                view.ports.append(("", "", -1))  # CoreDNS's sentinel: names exist, SRV gets nothing
            for ep in sl.endpoints:
                if not (ep.is_ready or view.svc.publish_not_ready_addresses):
                    continue
                for ip in ep.addresses:
                    host = ep.hostname or self._pod_hostname(ep.target_ref, ns, ip, view.svc.meta.name,
                                                             pods_by_name, pods_by_ip) or _dashed(ip)
                    if _Endpoint(ip, host) not in view.endpoints:
                        view.endpoints.append(_Endpoint(ip, host))
        self._cluster_ips: dict[str, _ServiceView] = {}
        for view in self._services.values():
            for ip in self._service_ips(view.svc):
                self._cluster_ips.setdefault(ip, view)
        if snap.namespaces is not None:
            self._namespaces = {n.lower() for n in snap.namespaces}
        else:
            self._namespaces = set(BUILTIN_NAMESPACES) | {ns for ns, _ in self._services} | {
                (s.meta.namespace or "default") for s in snap.slices} | {p.namespace for p in snap.pods}

    @staticmethod
    def _pod_hostname(ref: Mapping[str, Any] | None, ns: str, ip: str, svc_name: str,
                      by_name: Mapping[tuple[str, str], PodInfo],
                      by_ip: Mapping[tuple[str, str], PodInfo]) -> str | None:
        """The endpoint hostname the EndpointSlice controller sets: the pod's hostname when its subdomain
        names this service (kubernetes pkg/controller/util/endpoint podToEndpoint rule)."""
        pod = None
        if ref and ref.get("kind", "Pod") == "Pod" and ref.get("name"):
            pod = by_name.get((ref.get("namespace") or ns, ref["name"]))
        if pod is None:
            pod = by_ip.get((ns, ip))
        if pod is not None and pod.hostname and pod.subdomain == svc_name and pod.namespace == ns:
            return pod.hostname
        return None

    @staticmethod
    def _service_ips(svc: Service) -> list[str]:
        if svc.type == "ExternalName" or svc.headless:
            return []
        ips = list(svc.cluster_ips) or ([svc.cluster_ip] if svc.cluster_ip else [])
        return [ip for ip in ips if ip and ip != "None"]

    # -- entry point ------------------------------------------------------------------------------------
    def answer(self, qname: str, qtype: str) -> Answer:
        """The response to one question (qtype by name: "A", "SRV", ...; unknown types by any name)."""
        owner = _fqdn(qname)
        name = owner.lower()
        qtype = qtype.upper()
        zone = self._zone_of(name)
        if zone is None:
            return Answer(REFUSED, authoritative=False)
        if qtype in ("AXFR", "IXFR"):
            return Answer(REFUSED, authoritative=False)
        records: list[Record] = []
        extra: list[Record] = []
        try:
            if qtype in ("A", "AAAA"):
                records = self._address(owner, name, zone, 4 if qtype == "A" else 6, [])
            elif qtype == "TXT":
                records = self._txt(owner, name, zone)
            elif qtype == "CNAME":
                records = self._cname(owner, name, zone)
            elif qtype == "PTR":
                records = self._ptr(owner, name, zone)
            elif qtype == "SRV":
                records, extra = self._srv(owner, name, zone)
            elif qtype == "SOA":
                records = [self._soa(zone)] if name == zone else []
            elif qtype == "NS" and name == zone:
                records, extra = self._ns(owner, zone)
            else:  # a fake A lookup, to tell NODATA from NXDOMAIN (CoreDNS handler.go)
                self._address(owner, name, zone, 4, [])
        except _NameError:
            return Answer(NXDOMAIN, authority=(self._soa(zone),))
        if not records:
            return Answer(NOERROR, authority=(self._soa(zone),))
        return Answer(NOERROR, answers=tuple(records), additional=tuple(extra))

    def _zone_of(self, name: str) -> str | None:
        best = None
        for z in self.zones:
            if (z == "." or name == z or name.endswith("." + z)) and (best is None or len(z) > len(best)):
                best = z
        return best

    def _soa(self, zone: str) -> Record:
        """plugin/backend_lookup.go SOA."""
        mname = "ns.dns." + zone if zone != "." else "ns.dns."
        rname = "hostmaster." + zone if zone != "." else "hostmaster."
        return Record(zone, "SOA", min(self.ttl, 300),
                      Soa(mname, rname, self.snapshot.serial & 0xFFFFFFFF, 7200, 1800, 86400, self.ttl))

    # -- the backend (CoreDNS Services / Records / Reverse) ----------------------------------------------
    def _services_for(self, name: str, zone: str, qtype: str) -> list[_Entry]:
        if qtype == "TXT":
            base = name[: -len(zone)].rstrip(".") if name != zone else ""
            if base == "dns-version":
                return [_Entry(host="", domain=name, text=DNS_SCHEMA_VERSION)]
            if self._records(name, zone):
                return []  # the name exists with other types: NODATA
            raise _NameError
        if name == "ns.dns." + zone:
            return [_Entry(ip, name) for _, ip in self._nameservers(zone)]
        entries = self._records(name, zone)
        if qtype == "SRV":  # SRV for ExternalName services is not implemented upstream either
            entries = [e for e in entries if _ip_family(e.host) is not None]
        return entries

    def _parse(self, name: str, zone: str) -> _Request | None:
        """parse.go parseRequest; None for the apex-like names that are NODATA."""
        base = name[: -len(zone)].rstrip(".") if name != zone else ""
        if base in ("", "svc", "pod"):
            return None
        segs = base.split(".")
        r = _Request(pod_or_svc=segs.pop())
        if r.pod_or_svc not in ("svc", "pod"):
            raise _NameError
        if not segs:
            return None
        r.namespace = segs.pop()
        if not segs:
            return r
        r.service = segs.pop()
        if len(segs) == 1:
            r.endpoint = segs[0]
        elif len(segs) == 2:
            r.port, r.protocol = _strip_underscore(segs[0]), _strip_underscore(segs[1])
        elif len(segs) > 2:
            raise _NameError
        return r

    def _records(self, name: str, zone: str) -> list[_Entry]:
        r = self._parse(name, zone)
        if r is None:
            return []
        if zone in REVERSE_ZONES:
            raise _NameError
        if r.namespace not in self._namespaces:
            raise _NameError
        if r.pod_or_svc == "pod":
            return self._find_pods(r, zone)
        return self._find_services(r, zone)

    def _find_pods(self, r: _Request, zone: str) -> list[_Entry]:
        if self.pod_mode == "disabled":
            raise _NameError
        if not r.service:
            return []
        podname = r.service
        if podname.count("-") == 3 and "--" not in podname:
            ip = podname.replace("-", ".")
        else:
            ip = podname.replace("-", ":")
        domain = f"{podname}.{r.namespace}.pod.{zone}"
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise _NameError from None
        if self.pod_mode == "insecure":
            return [_Entry(ip, domain)]
        found = [_Entry(ip, domain) for p in self._pod_ips.get(ip, []) if p.namespace == r.namespace]
        if not found:
            raise _NameError
        return found[:1]

    def _find_services(self, r: _Request, zone: str) -> list[_Entry]:
        if not r.service:
            return []  # an existing namespace: NODATA
        view = self._services.get((r.namespace, r.service))
        if view is None:
            raise _NameError
        svc = view.svc
        base = f"{svc.meta.name}.{svc.meta.namespace or 'default'}.svc.{zone}"
        if svc.type == "ExternalName":
            if r.endpoint or r.port or r.protocol or not svc.external_name:
                raise _NameError
            return [_Entry(_fqdn(svc.external_name.lower()), base)]
        out: list[_Entry] = []
        if svc.headless or r.endpoint:
            for ep in view.endpoints:
                if r.endpoint and r.endpoint != ep.hostname.lower():
                    continue
                for pname, proto, port in view.ports:
                    if _match_port(r.port, pname, r.protocol, proto):
                        out.append(_Entry(ep.ip, f"{ep.hostname}.{base}", port))
        else:
            for p in svc.ports:
                if _match_port(r.port, p.name or "", r.protocol, p.protocol):
                    out.extend(_Entry(ip, base, p.port) for ip in self._service_ips(svc))
        if not out:
            raise _NameError
        return out

    def _reverse(self, name: str, zone: str) -> list[_Entry]:
        ip = _reverse_address(name)
        if not ip:
            self._records(name, zone)
            return []
        view = self._cluster_ips.get(ip)
        if view is not None:
            svc = view.svc
            return [_Entry(f"{svc.meta.name}.{svc.meta.namespace or 'default'}.svc.{self.domain}", name)]
        out = []
        for (ns, svc_name), v in self._services.items():
            for ep in v.endpoints:
                if ep.ip == ip:
                    out.append(_Entry(f"{ep.hostname}.{svc_name}.{ns}.svc.{self.domain}", name))
        if not out:
            raise _NameError
        return out

    def _nameservers(self, zone: str) -> list[tuple[str, str]]:
        """ns.go nsAddrs: the DNS service's name and addresses (its ClusterIPs, or endpoints if headless)."""
        view = self._services.get(self.dns_service)
        if view is None:
            return []
        svc = view.svc
        name = f"{svc.meta.name}.{svc.meta.namespace}.svc.{zone}"
        if svc.headless:
            return [(f"{ep.hostname}.{name}", ep.ip) for ep in view.endpoints]
        return [(name, ip) for ip in self._service_ips(svc)]

    # -- record builders (plugin/backend_lookup.go) --------------------------------------------------------
    def _address(self, owner: str, name: str, zone: str, family: int, previous: list[Record]) -> list[Record]:
        rtype = "A" if family == 4 else "AAAA"
        entries = self._services_for(name, zone, rtype)
        records: list[Record] = []
        seen: set[str] = set()
        for e in entries:
            fam = _ip_family(e.host)
            if fam is None:  # a name: CNAME, chased when it lies in our zone
                target = _fqdn(e.host)
                if target == name or len(previous) > 7:
                    continue
                cname = Record(owner, "CNAME", self.ttl, target)
                if any(p.type == "CNAME" and p.data == target for p in previous):
                    continue
                if self._zone_of(target) == zone and zone not in REVERSE_ZONES:
                    try:
                        nxt = self._address(target, target, zone, family, [*previous, cname])
                    except _NameError:
                        continue
                    if nxt:
                        records += [cname, *nxt]
                    continue
                records.append(cname)  # no upstream to ask about an outside target
            elif fam == family and e.host not in seen:
                seen.add(e.host)
                records.append(Record(owner, rtype, self.ttl, e.host))
        return records

    def _txt(self, owner: str, name: str, zone: str) -> list[Record]:
        return [Record(owner, "TXT", VERSION_TTL, e.text) for e in self._services_for(name, zone, "TXT")
                if e.text is not None]

    def _cname(self, owner: str, name: str, zone: str) -> list[Record]:
        entries = self._services_for(name, zone, "CNAME")
        if entries and _ip_family(entries[0].host) is None:
            return [Record(owner, "CNAME", self.ttl, _fqdn(entries[0].host))]
        return []

    def _ptr(self, owner: str, name: str, zone: str) -> list[Record]:
        out: list[Record] = []
        for e in self._reverse(name, zone):
            target = _fqdn(e.host)
            if all(r.data != target for r in out):
                out.append(Record(owner, "PTR", self.ttl, target))
        return out

    def _srv(self, owner: str, name: str, zone: str) -> tuple[list[Record], list[Record]]:
        entries = self._services_for(name, zone, "SRV")
        weight = max(1, 100 // len(entries)) if entries else 0
        records: list[Record] = []
        extra: list[Record] = []
        seen_srv: set[tuple[str, int]] = set()
        seen_addr: set[tuple[str, str]] = set()
        for e in entries:
            if e.port == -1:
                continue
            fam = _ip_family(e.host)
            target = _fqdn(e.domain)
            if (target, e.port) not in seen_srv:
                seen_srv.add((target, e.port))
                records.append(Record(owner, "SRV", self.ttl, Srv(0, weight, e.port, target)))
            if (target, e.host) not in seen_addr:
                seen_addr.add((target, e.host))
                extra.append(Record(target, "A" if fam == 4 else "AAAA", self.ttl, e.host))
        return records, extra

    def _ns(self, owner: str, zone: str) -> tuple[list[Record], list[Record]]:
        records: list[Record] = []
        extra: list[Record] = []
        for ns_name, ip in self._nameservers(zone):
            target = _fqdn(ns_name)
            extra.append(Record(target, "A" if _ip_family(ip) == 4 else "AAAA", self.ttl, ip))
            if all(r.data != target for r in records):
                records.append(Record(owner, "NS", self.ttl, target))
        return records, extra


def resolve(snapshot: Snapshot, qname: str, qtype: str, domain: str = DEFAULT_DOMAIN, **kw: Any) -> Answer:
    """One-shot convenience: answer a single question from a snapshot."""
    return ClusterDNS(snapshot, domain, **kw).answer(qname, qtype)
