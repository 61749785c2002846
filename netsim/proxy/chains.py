"""kube-proxy's iptables chain names (kubernetes pkg/proxy/iptables/proxier.go: portProtoHash,
servicePortPolicyClusterChain, servicePortPolicyLocalChainName, serviceFirewallChainName,
serviceExternalChainName, servicePortEndpointChainName, isServiceChainName).

A per-service-port chain is PREFIX + the first 16 characters of base32(sha256(portName + protocol)), where
portName is `ns/name[:port]` and protocol is lower case, concatenated without separator; an endpoint
chain hashes portName + protocol + `ip:port`. 16 characters keep names under iptables' 28-character limit.
"""

from __future__ import annotations

import functools
import hashlib

from netsim.proxy.model import Endpoint, ServicePort

SVC_PREFIX = "KUBE-SVC-"
SVL_PREFIX = "KUBE-SVL-"
EXT_PREFIX = "KUBE-EXT-"
FW_PREFIX = "KUBE-FW-"
SEP_PREFIX = "KUBE-SEP-"
SERVICE_CHAIN_PREFIXES: tuple[str, ...] = (SVC_PREFIX, SVL_PREFIX, SEP_PREFIX, FW_PREFIX, EXT_PREFIX)

# Top-level chains (proxier.go constants).
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"  # kubelet's anti-martian chain, duplicated by kube-proxy

LOCALHOST_NODEPORT_NFACCT = "localhost_nps_accepted_pkts"
CT_INVALID_NFACCT = "ct_state_invalid_dropped_pkts"


_B32_PAIRS = [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"]


@functools.lru_cache(maxsize=1 << 17)
def _hash16(text: str) -> str:
    # The first 16 base32 characters encode exactly the first 10 bytes (80 bits) of the digest, so they
    # are read off that 80-bit number two characters (10 bits) at a time: the same string as
    # base32(sha256)[:16] (tested), without base64's pure-Python encoder. Cached: resyncs ask again.
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    p = _B32_PAIRS
    return (p[n >> 70] + p[(n >> 60) & 1023] + p[(n >> 50) & 1023] + p[(n >> 40) & 1023]
            + p[(n >> 30) & 1023] + p[(n >> 20) & 1023] + p[(n >> 10) & 1023] + p[n & 1023])


def port_proto_hash(port_name: str, protocol: str) -> str:
    """portProtoHash: the 16-character suffix shared by a service port's SVC/SVL/EXT/FW chains."""
    return _hash16(port_name + protocol.lower())


def svc_chain(port_name: str, protocol: str) -> str:
    return SVC_PREFIX + port_proto_hash(port_name, protocol)


def svl_chain(port_name: str, protocol: str) -> str:
    return SVL_PREFIX + port_proto_hash(port_name, protocol)


def ext_chain(port_name: str, protocol: str) -> str:
    return EXT_PREFIX + port_proto_hash(port_name, protocol)


def fw_chain(port_name: str, protocol: str) -> str:
    return FW_PREFIX + port_proto_hash(port_name, protocol)


def sep_chain(port_name: str, protocol: str, endpoint: str) -> str:
    """servicePortEndpointChainName; `endpoint` is `ip:port` (`[v6]:port`)."""
    return SEP_PREFIX + _hash16(port_name + protocol.lower() + endpoint)


def is_service_chain(name: str) -> bool:
    """isServiceChainName: chains kube-proxy garbage-collects when no longer in use."""
    return name.startswith(SERVICE_CHAIN_PREFIXES)


class ServiceChains:
    """The chain names of one service port, computed once (as newServiceInfo does)."""

    def __init__(self, sp: ServicePort):
        name, proto = sp.port_name_string, sp.proto
        suffix = port_proto_hash(name, proto)
        self.svc = SVC_PREFIX + suffix
        self.svl = SVL_PREFIX + suffix
        self.ext = EXT_PREFIX + suffix
        self.fw = FW_PREFIX + suffix
        self._name = name
        self._proto = proto
        self._seps: dict[str, str] = {}  # endpoint string -> SEP chain (asked for several times per sync)

    def sep(self, ep: Endpoint) -> str:
        text = str(ep)
        name = self._seps.get(text)
        if name is None:
            name = self._seps[text] = sep_chain(self._name, self._proto, text)
        return name
