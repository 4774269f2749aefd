"""A throw-away certificate authority, written out the way Terraform writes Aiven's files.

``make_tls_files(directory)`` gives a CA, a server certificate for 127.0.0.1 and
localhost, and a client certificate, as PEM files (private keys mode 0600), plus
a second, unrelated CA with its own client certificate for the "wrong CA" cases.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

from clickstream_runtime.settings import KafkaSettings

#: The names the server certificate is valid for; the services connect to 127.0.0.1.
SERVER_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files of one test run."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: Another CA: trusting it instead of ``ca`` must fail verification.
    other_ca: Path
    #: A client certificate signed by ``other_ca``: the proxy must refuse it.
    stranger_cert: Path
    stranger_key: Path

    def server_context(self) -> ssl.SSLContext:
        """Server side of the Kafka proxy: our certificate, and a client certificate required."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca))
        context.load_cert_chain(str(self.server_cert), str(self.server_key))
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def kafka_env(self) -> dict[str, str]:
        """KAFKA_SSL_* for a client that Aiven (and our proxy) would accept."""
        return {
            "KAFKA_SSL_CAFILE": str(self.ca),
            "KAFKA_SSL_CERTFILE": str(self.client_cert),
            "KAFKA_SSL_KEYFILE": str(self.client_key),
        }

    def kafka_settings(self, bootstrap: str) -> KafkaSettings:
        """Kafka client settings for ``bootstrap`` with this run's CA and client certificate."""
        return KafkaSettings(
            _env_file=None,  # type: ignore[call-arg]
            kafka_bootstrap_servers=bootstrap,
            kafka_ssl_cafile=self.ca,
            kafka_ssl_certfile=self.client_cert,
            kafka_ssl_keyfile=self.client_key,
        )


def _write_public(path: Path, blob: trustme.Blob) -> Path:
    blob.write_to_path(str(path))
    return path


def _write_private(path: Path, blob: trustme.Blob) -> Path:
    # Created 0600 from the first byte: a key must never be readable by others,
    # and PostgreSQL refuses a server key with looser permissions.
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(blob.bytes())
    return path


def make_tls_files(directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    server = authority.issue_cert(*SERVER_NAMES)
    client = authority.issue_cert("clickstream-test-client")
    other = trustme.CA()
    stranger = other.issue_cert("clickstream-stranger")
    # One file per certificate: only the leaf, as Aiven's service.cert is.
    return TlsFiles(
        ca=_write_public(directory / "ca.pem", authority.cert_pem),
        server_cert=_write_public(directory / "server.crt", server.cert_chain_pems[0]),
        server_key=_write_private(directory / "server.key", server.private_key_pem),
        client_cert=_write_public(directory / "client.crt", client.cert_chain_pems[0]),
        client_key=_write_private(directory / "client.key", client.private_key_pem),
        other_ca=_write_public(directory / "other-ca.pem", other.cert_pem),
        stranger_cert=_write_public(directory / "stranger.crt", stranger.cert_chain_pems[0]),
        stranger_key=_write_private(directory / "stranger.key", stranger.private_key_pem),
    )
