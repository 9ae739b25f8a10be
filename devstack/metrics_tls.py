"""Client-certificate TLS for the broker's Prometheus endpoint.

RabbitMQ 3.10's Prometheus plugin has no password option; its TLS listener can demand
a client certificate (``verify_peer`` + ``fail_if_no_peer_cert``), which is the
credential a scraper holds and a notebook user does not. :func:`issue_metrics_tls`
makes a throwaway CA, a server certificate for 127.0.0.1 and one client certificate,
all in private files (0600 in a 0700 folder) beside the broker's other state.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from devstack.private_files import private_dir, write_private
from devstack.tls import LOOPBACK, LocalCa, key_pem, pem


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
    ca = LocalCa("devstack metrics CA")
    server, server_key = ca.issue(
        "rabbitmq metrics", ExtendedKeyUsageOID.SERVER_AUTH, [x509.IPAddress(LOOPBACK)]
    )
    client, client_key = ca.issue("metrics scraper", ExtendedKeyUsageOID.CLIENT_AUTH)
    write_private(tls.ca_file, pem(ca.certificate))
    write_private(tls.server_cert, pem(server))
    write_private(tls.server_key, key_pem(server_key))
    write_private(tls.client_cert, pem(client))
    write_private(tls.client_key, key_pem(client_key))
    return tls
