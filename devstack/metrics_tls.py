"""Client-certificate TLS for the broker's Prometheus endpoint.

RabbitMQ 3.10's Prometheus plugin has no password option; its TLS listener can demand
a client certificate (``verify_peer`` + ``fail_if_no_peer_cert``), which is the
credential a scraper holds and a notebook user does not. :func:`issue_metrics_tls`
makes a throwaway CA, a server certificate for 127.0.0.1 and one client certificate,
all in private files (0600 in a 0700 folder) beside the broker's other state.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.private_files import private_dir, write_private

_VALID_DAYS = 30
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@dataclass(frozen=True)
class MetricsTls:
    """The files of the endpoint's TLS: the CA, the server's pair and the scraper's pair."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts the CA and presents the scraper's certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context

    def rabbitmq_conf(self, port: int) -> str:
        """``rabbitmq.conf`` lines: the TLS listener on loopback, client certificate required.

        No ``prometheus.tcp`` lines: with only a TLS listener configured, the plugin
        opens no plain-HTTP one.
        """
        return (
            f"prometheus.ssl.ip = {LOOPBACK}\n"
            f"prometheus.ssl.port = {port}\n"
            f"prometheus.ssl.cacertfile = {self.ca_file}\n"
            f"prometheus.ssl.certfile = {self.server_cert}\n"
            f"prometheus.ssl.keyfile = {self.server_key}\n"
            "prometheus.ssl.verify = verify_peer\n"
            "prometheus.ssl.fail_if_no_peer_cert = true\n"
        )


def issue_metrics_tls(directory: Path) -> MetricsTls:
    """Create (or keep, if present) the CA and both certificates under ``directory``."""
    private_dir(directory)
    tls = MetricsTls(
        ca_file=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "scraper.pem",
        client_key=directory / "scraper-key.pem",
    )
    if all(path.exists() for path in (tls.ca_file, tls.server_cert, tls.client_cert)):
        return tls
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devstack metrics CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        _builder(_name("rabbitmq metrics"), ca_name, server_key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(LOOPBACK)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        _builder(_name("metrics scraper"), ca_name, client_key.public_key())
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(tls.ca_file, _pem(ca))
    write_private(tls.server_cert, _pem(server))
    write_private(tls.server_key, _key_pem(server_key))
    write_private(tls.client_cert, _pem(client))
    write_private(tls.client_key, _key_pem(client_key))
    return tls


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
    )


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
