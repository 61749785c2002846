"""ServiceAccount tokens: what the kubelet mounts into pods and the API server accepts from them.

A token is a JWT signed ES256 with the cluster's service-account key (`<pki>/sa.key`, as kubeadm's
/etc/kubernetes/pki/sa.key, made at `up` or on first use), with the claims of a pod-bound token as
kube-apiserver's TokenRequest issues them (pkg/serviceaccount/claims.go Claims): `iss` and `aud` the
cluster's issuer URL (`https://kubernetes.default.svc.<domain>`, kubeadm's default
--service-account-issuer), `sub` = `system:serviceaccount:<ns>:<name>`, `iat`/`nbf`/`exp`, and the
private `kubernetes.io` claim naming the namespace, the ServiceAccount, the pod and the node.

Lifetime: the ServiceAccount admission plugin asks for 3607 s, and the API server, with
--service-account-extend-token-expiration (on by default), extends such a request to a year
(pkg/registry/core/serviceaccount/storage/token.go: `ExpirationExtensionSeconds`), which is what a pod
gets here: no refresh is needed while it runs.

Validation (pkg/serviceaccount/claims.go validator.Validate): the signature, the issuer, the audience,
`exp`/`nbf`; the bound pod must still exist with the same UID (a deleted pod's token stops working), and the
ServiceAccount, when the store holds it, must have the UID the token names. The authenticated user is
`system:serviceaccount:<ns>:<name>` in the groups `system:serviceaccounts` and
`system:serviceaccounts:<ns>` (pkg/serviceaccount/util.go UserInfo).
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

KEY_FILE = "sa.key"
REQUESTED_SECONDS = 3607  # the ServiceAccount admission plugin's expirationSeconds for kube-api-access
EXTENDED_SECONDS = 365 * 24 * 3600  # ExpirationExtensionSeconds
USER_PREFIX = "system:serviceaccount:"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def issuer(dns_domain: str) -> str:
    return f"https://kubernetes.default.svc.{dns_domain}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(pki_root: str) -> ec.EllipticCurvePrivateKey:
    """The service-account signing key, made (0600) when the PKI has none yet (a cluster made before)."""
    path = os.path.join(pki_root, KEY_FILE)
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key
    except FileNotFoundError:
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    try:
        os.link(tmp, path)  # the first writer wins; a racing one reads what it wrote
    except FileExistsError:
        os.unlink(tmp)
        return load_key(pki_root)
    os.unlink(tmp)
    return key


@dataclass(frozen=True)
class Binding:
    """What a pod-bound token names."""

    namespace: str
    serviceaccount: str
    sa_uid: str
    pod: str
    pod_uid: str
    node: str = ""

    @property
    def user(self) -> str:
        return f"{USER_PREFIX}{self.namespace}:{self.serviceaccount}"


def issue(key: ec.EllipticCurvePrivateKey, dns_domain: str, b: Binding, *, audience: str = "",
          now: float | None = None) -> str:
    """A signed pod-bound token (claims.go Claims with the year-long extended expiry) for `audience`
    (the API server's, the issuer URL, when empty)."""
    iat = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "aud": [audience or issuer(dns_domain)], "iss": issuer(dns_domain), "sub": b.user,
        "iat": iat, "nbf": iat, "exp": iat + EXTENDED_SECONDS, "jti": str(uuid.uuid4()),
        "kubernetes.io": {"namespace": b.namespace,
                          "serviceaccount": {"name": b.serviceaccount, "uid": b.sa_uid},
                          "pod": {"name": b.pod, "uid": b.pod_uid},
                          "warnafter": iat + REQUESTED_SECONDS}}
    if b.node:
        claims["kubernetes.io"]["node"] = {"name": b.node}
    h = hashes.Hash(hashes.SHA256())
    h.update(key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    kid = _b64(h.finalize())  # keyIDFromPublicKey: the key's SHA-256, base64url
    header = {"alg": "ES256", "kid": kid, "typ": "JWT"}
    signing = f"{_b64(json.dumps(header, separators=(',', ':')).encode())}." \
              f"{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    r, s = decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


def verify(key: ec.EllipticCurvePrivateKey, dns_domain: str, token: str,
           lookup: Callable[[str, str | None, str], Mapping[str, Any] | None], *,
           now: float | None = None) -> tuple[str, tuple[str, ...]] | None:
    """(user, groups) for a valid token, None otherwise. `lookup(kind, namespace, name)` reads the store."""
    try:
        head, body, sig = token.split(".")
        raw = _unb64(sig)
        if len(raw) != 64 or json.loads(_unb64(head)).get("alg") != "ES256":
            return None
        key.public_key().verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                                     int.from_bytes(raw[32:], "big")),
                                f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        claims = json.loads(_unb64(body))
    except (ValueError, InvalidSignature, TypeError, AttributeError):
        return None
    t = now if now is not None else time.time()
    aud = claims.get("aud")
    if claims.get("iss") != issuer(dns_domain) or issuer(dns_domain) not in (aud if isinstance(aud, list) else [aud]):
        return None
    if not isinstance(claims.get("exp"), int) or t >= claims["exp"] or t + 60 < int(claims.get("nbf") or 0):
        return None
    priv = claims.get("kubernetes.io") or {}
    ns, sa, pod = priv.get("namespace"), priv.get("serviceaccount") or {}, priv.get("pod") or {}
    if not ns or not sa.get("name") or claims.get("sub") != f"{USER_PREFIX}{ns}:{sa['name']}":
        return None
    if pod:
        cur = lookup("Pod", ns, str(pod.get("name", "")))
        if cur is None or (cur.get("metadata") or {}).get("uid") != pod.get("uid"):
            return None  # the pod the token was bound to is gone: the token is no longer valid
    account = lookup("ServiceAccount", ns, sa["name"])
    if account is not None and sa.get("uid") and (account.get("metadata") or {}).get("uid") != sa["uid"]:
        return None
    return claims["sub"], ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated")
