"""A pod's stub resolver, run from inside its network namespace: the search path and ndots:5 of the
resolv.conf the kubelet writes (`netsim.dns.resolvconf`, as kubelet's dns.go builds it), asked of the
cluster DNS over UDP.

Used by `netsim.Cluster.dns_lookup` (scenario `dns` steps). The answer is a dict:
`{"rcode", "name", "answers": [{"name", "type", "data"}], "addresses": [...]}`, or rcode TIMEOUT with
`error` when nothing came back.
"""

from __future__ import annotations

import socket
from typing import Any

import dnslib

from netsim.kernel.api import Kernel

NDOTS = 5


def search_path(namespace: str, domain: str) -> list[str]:
    """The kubelet's ClusterFirst search list for a pod in `namespace`."""
    return [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]


def candidates(name: str, namespace: str, domain: str) -> list[str]:
    """The names a glibc/musl stub tries, in order: with fewer than ndots dots, each search suffix first,
    then the name as written; a fully qualified name (trailing dot) only as written."""
    fqdn = name.endswith(".")
    search = [] if fqdn or name.count(".") >= NDOTS else search_path(namespace, domain)
    return [f"{name}.{s}" for s in search] + [name.rstrip(".")]


def lookup(kernel: Kernel, netns: str, namespace: str, domain: str, server: str, name: str, qtype: str,
           timeout: float) -> dict[str, Any]:
    """Resolve `name` as a pod in `namespace` whose sandbox is `netns` would, asking `server`:53."""
    last: dict[str, Any] = {"rcode": "SERVFAIL", "addresses": [], "answers": []}
    nxdomain: dict[str, Any] | None = None
    for cand in candidates(name, namespace, domain):
        q = dnslib.DNSRecord.question(cand, qtype)

        def ask(q: dnslib.DNSRecord = q) -> bytes:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(timeout)
            try:
                sock.sendto(q.pack(), (server, 53))
                return sock.recv(4096)
            finally:
                sock.close()
        try:
            reply = dnslib.DNSRecord.parse(kernel.call_in(netns, ask))
        except (TimeoutError, OSError) as exc:
            return {"rcode": "TIMEOUT", "addresses": [], "answers": [], "error": str(exc)}
        rcode = dnslib.RCODE.get(reply.header.rcode)
        answers = [{"name": str(rr.rname), "type": dnslib.QTYPE.get(rr.rtype), "data": str(rr.rdata)}
                   for rr in reply.rr]
        last = {"rcode": rcode, "name": cand, "answers": answers,
                "addresses": [a["data"] for a in answers if a["type"] in ("A", "AAAA")]}
        if rcode == "NOERROR" and answers:
            return last
        if rcode == "NXDOMAIN" and nxdomain is None:
            nxdomain = last
    # As a stub resolver's search reports it: the cluster domain's "no such name" rather than the refusal
    # of the final, out-of-zone attempt.
    return nxdomain or last
