"""TLS contexts for Kafka (client certificate) and PostgreSQL (verify-full).

Every file is checked up front so that a wrong path fails at start with a
message naming the file and the variable, not deep inside a handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsFileError(SystemExit):
    def __init__(self, variable: str, path: Path, problem: str) -> None:
        #: The problem without the "configuration error: " prefix.
        self.detail = f"{variable}={path}: {problem}"
        super().__init__(f"configuration error: {self.detail}")


def _readable(variable: str, path: Path) -> Path:
    if not path.is_file():
        raise TlsFileError(variable, path, "file not found")
    try:
        path.read_bytes()
    except OSError as exc:
        raise TlsFileError(variable, path, f"cannot be read ({exc.strerror})") from None
    return path


def kafka_ssl_context(
    cafile: Path | None, certfile: Path | None, keyfile: Path | None
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if cafile is not None:
        try:
            context.load_verify_locations(cafile=str(_readable("KAFKA_SSL_CAFILE", cafile)))
        except ssl.SSLError as exc:
            raise TlsFileError(
                "KAFKA_SSL_CAFILE", cafile, f"not a CA certificate ({exc})"
            ) from None
    if certfile is not None and keyfile is not None:
        _readable("KAFKA_SSL_CERTFILE", certfile)
        _readable("KAFKA_SSL_KEYFILE", keyfile)
        try:
            # Parse the certificate on its own, so a bad one is not blamed on the key.
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(certfile))
        except ssl.SSLError as exc:
            raise TlsFileError(
                "KAFKA_SSL_CERTFILE", certfile, f"not a PEM certificate ({exc})"
            ) from None

        def no_password() -> bytes:
            # Without this callback OpenSSL would prompt on the terminal and hang a service.
            raise TlsFileError("KAFKA_SSL_KEYFILE", keyfile, "is encrypted; use an unencrypted key")

        try:
            context.load_cert_chain(
                certfile=str(certfile), keyfile=str(keyfile), password=no_password
            )
        except ssl.SSLError as exc:
            raise TlsFileError(
                "KAFKA_SSL_KEYFILE", keyfile, f"does not match KAFKA_SSL_CERTFILE ({exc})"
            ) from None
    return context


def postgres_ssl_context(rootcert: Path, *, check_hostname: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        context.load_verify_locations(cafile=str(_readable("POSTGRES_SSLROOTCERT", rootcert)))
    except ssl.SSLError as exc:
        raise TlsFileError(
            "POSTGRES_SSLROOTCERT", rootcert, f"not a CA certificate ({exc})"
        ) from None
    context.check_hostname = check_hostname
    return context
