"""The cluster's PKI, made at `up`: a CA, the API server's serving certificate, the admin's client certificate.

Laid out as kubeadm lays out /etc/kubernetes/pki (ca.crt/ca.key, apiserver.crt/apiserver.key) plus the
admin client pair kind puts into the user's kubeconfig: CN `kubernetes-admin`, O `kubeadm:cluster-admins`
and `system:masters` (kubeadm's admin.conf; system:masters is the group the authorizer lets do anything).
The serving certificate names what a client may dial: 127.0.0.1 and localhost (the kubeconfig's server),
and the `kubernetes` Service's names and ClusterIP (kubeadm's certs.go apiserver SANs:
kubernetes, kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.<domain>, the first
address of the service CIDR), so in-cluster clients can verify it as well.

Every file is written 0600 under `<state dir>/pki` (0700): the keys are root's alone. A bearer token for
the admin is made next to them (`token`), for clients that speak tokens rather than certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_USER = "kubernetes-admin"
ADMIN_GROUPS = ("kubeadm:cluster-admins", "system:masters")
VALIDITY = dt.timedelta(days=365)  # kubeadm's leaf certificates: one year (the CA gets ten)
CA_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class Pki:
    """Where a cluster's certificates and keys are."""

    root: str

    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    @property
    def ca_crt(self) -> str:
        return self.path("ca.crt")

    @property
    def server_crt(self) -> str:
        return self.path("apiserver.crt")

    @property
    def server_key(self) -> str:
        return self.path("apiserver.key")

    @property
    def admin_crt(self) -> str:
        return self.path("admin.crt")

    @property
    def admin_key(self) -> str:
        return self.path("admin.key")

    @property
    def token(self) -> str:
        return self.path("token")

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read()

    def exists(self) -> bool:
        return all(os.path.exists(p) for p in (self.ca_crt, self.server_crt, self.server_key,
                                                  self.admin_crt, self.admin_key, self.token))


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _key() -> ec.EllipticCurvePrivateKey:
    # ECDSA P-256: what kubeadm makes when asked for ECDSA; fast to generate, which `up` cares about.
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sign(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, validity: dt.timedelta,
          usages: list | None = None, sans: list | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + validity)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage(usages or []), critical=False)
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def server_sans(service_ip: str, dns_domain: str, advertise_ip: str | None = None) -> list:
    """The serving certificate's names (kubeadm's GetAPIServerAltNames: the Service names and IP, the
    advertise address (the first node's IP, where in-cluster traffic arrives after kube-proxy's DNAT),
    and the loopback names of the host-local endpoint)."""
    names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             f"kubernetes.default.svc.{dns_domain}"]
    ips = ["127.0.0.1", service_ip] + ([advertise_ip] if advertise_ip else [])
    return [*(x509.DNSName(n) for n in names), *(x509.IPAddress(ipaddress.ip_address(i)) for i in ips)]


def make_pki(root: str, *, service_ip: str, dns_domain: str, advertise_ip: str | None = None) -> Pki:
    """Generate the CA, serving and admin certificates, the admin token and the service-account signing
    key (`sa.key`, kubeadm's name) under `root` (made 0700)."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    os.chmod(root, 0o700)
    pki = Pki(root)
    ca_key = _key()
    ca_name = _name("kubernetes")  # kubeadm's CA common name
    ca = _sign(ca_name, ca_key, ca_name, ca_key, ca=True, validity=CA_VALIDITY)
    srv_key = _key()
    srv = _sign(_name("kube-apiserver"), srv_key, ca_name, ca_key, ca=False, validity=VALIDITY,
                usages=[ExtendedKeyUsageOID.SERVER_AUTH], sans=server_sans(service_ip, dns_domain, advertise_ip))
    adm_key = _key()
    adm = _sign(_name(ADMIN_USER, ADMIN_GROUPS), adm_key, ca_name, ca_key, ca=False, validity=VALIDITY,
                usages=[ExtendedKeyUsageOID.CLIENT_AUTH])
    pem = serialization.Encoding.PEM
    _write_private(pki.path("ca.key"), _pem_key(ca_key))
    _write_private(pki.ca_crt, ca.public_bytes(pem))
    _write_private(pki.server_key, _pem_key(srv_key))
    _write_private(pki.server_crt, srv.public_bytes(pem))
    _write_private(pki.admin_key, _pem_key(adm_key))
    _write_private(pki.admin_crt, adm.public_bytes(pem))
    _write_private(pki.token, secrets.token_urlsafe(32).encode())
    _write_private(pki.path("sa.key"), _pem_key(_key()))
    return pki


def subject_of(der: bytes) -> tuple[str, tuple[str, ...]]:
    """(user, groups) of a verified client certificate, as the API server's x509 authenticator reads them:
    the CN is the user name, each O a group (k8s.io/apiserver pkg/authentication/request/x509
    CommonNameUserConversion)."""
    cert = x509.load_der_x509_certificate(der)
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return (str(cn[0]) if cn else ""), orgs
