"""Throwaway certificates for loopback servers: a private CA per stack, and server
certificates it signs. All files are private (0600 in a 0700 folder).

Used for the broker's metrics endpoint (:mod:`devstack.metrics_tls`) and for HTTPS on
the Hub and the demo app when they are embedded from another site (:func:`issue_web_tls`).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.private_files import private_dir, write_private

VALID_DAYS = 30
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
# The names a loopback server answers to: two sites to a browser
LOOPBACK_NAMES: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(LOOPBACK)]


class LocalCa:
    """A CA made on the spot, whose key lives only as long as this object."""

    def __init__(self, common_name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.name = name(common_name)
        self.certificate = (
            builder(self.name, self.name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    def issue(
        self,
        common_name: str,
        usage: x509.ObjectIdentifier,
        alt_names: list[x509.GeneralName] | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A certificate (and its key) for ``usage`` (server or client auth)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = builder(name(common_name), self.name, key.public_key())
        if alt_names:
            cert = cert.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        signed = cert.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(
            self._key, hashes.SHA256()
        )
        return signed, key


@dataclass(frozen=True)
class WebTls:
    """HTTPS for loopback web servers: the CA and one server pair for localhost and
    127.0.0.1."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """An SSL context serving the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts the CA (and the system's CAs)."""
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=str(self.ca_file))
        return context

    def spki_sha256(self) -> str:
        """The base64 SHA-256 of the certificate's public key: what Chromium's
        ``--ignore-certificate-errors-spki-list`` names to accept exactly this one."""
        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def issue_web_tls(directory: Path) -> WebTls:
    """Create (or keep, if present) a CA and a server certificate under ``directory``."""
    private_dir(directory)
    tls = WebTls(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server-key.pem",
    )
    if all(path.exists() for path in (tls.ca_file, tls.cert_file, tls.key_file)):
        return tls
    ca = LocalCa("devstack web CA")
    server, key = ca.issue("devstack loopback", ExtendedKeyUsageOID.SERVER_AUTH, LOOPBACK_NAMES)
    write_private(tls.ca_file, pem(ca.certificate))
    write_private(tls.cert_file, pem(server))
    write_private(tls.key_file, key_pem(key))
    return tls


def name(common_name: str) -> x509.Name:
    """An X.509 name with only a common name."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    """A certificate valid from a few minutes ago for :data:`VALID_DAYS`."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def pem(certificate: x509.Certificate) -> str:
    """A certificate in PEM."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """A private key in unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
