"""Why a Kafka client could not bootstrap, when the reason is one of our TLS files.

aiokafka logs the TLS error and raises only "Unable to bootstrap"; a service
calls :func:`explain_kafka_tls_failure` then, which repeats the handshake itself
and turns a certificate problem into a message naming the file to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from clickstream_runtime.tls import TlsFileError

if TYPE_CHECKING:
    from clickstream_runtime.settings import KafkaSettings

# ApiVersions v0: the one request every broker answers before anything else.
_CLIENT_ID = b"clickstream-tls-probe"
_HEADER = struct.pack(">hhih", 18, 0, 1, len(_CLIENT_ID)) + _CLIENT_ID
_API_VERSIONS = struct.pack(">i", len(_HEADER)) + _HEADER


async def explain_kafka_tls_failure(settings: KafkaSettings, wait_s: float = 10.0) -> None:
    """Raise :class:`TlsFileError` if a bootstrap server rejects our TLS files; else return."""
    context = settings.kafka_ssl_context()
    if context is None:
        return
    for server in settings.kafka_bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        problem = await _probe(host, int(port), context, settings, wait_s)
        if problem is not None:
            raise problem


async def _probe(
    host: str, port: int, context: ssl.SSLContext, settings: KafkaSettings, wait_s: float
) -> TlsFileError | None:
    try:
        async with asyncio.timeout(wait_s):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=host
            )
    except ssl.SSLCertVerificationError as exc:
        return TlsFileError(
            "KAFKA_SSL_CAFILE",
            settings.kafka_ssl_cafile or Path("(system CAs)"),
            f"the broker's certificate does not verify against it ({exc.verify_message})",
        )
    except (OSError, TimeoutError):
        return None  # unreachable or not TLS: not something a file can fix
    try:
        # With TLS 1.3 the broker judges our certificate after the handshake: its
        # verdict (an alert, or just a reset) arrives with the first read.
        async with asyncio.timeout(wait_s):
            writer.write(_API_VERSIONS)
            await writer.drain()
            await reader.readexactly(4)
    except (ssl.SSLError, ConnectionResetError, asyncio.IncompleteReadError) as exc:
        if settings.kafka_ssl_certfile is None:
            return TlsFileError(
                "KAFKA_SSL_CERTFILE",
                Path("(unset)"),
                f"the broker closed the connection after the TLS handshake: "
                f"it wants a client certificate ({exc!r})",
            )
        return TlsFileError(
            "KAFKA_SSL_CERTFILE",
            settings.kafka_ssl_certfile,
            f"the broker closed the connection after the TLS handshake: "
            f"it did not accept this client certificate ({exc!r})",
        )
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
    return None
