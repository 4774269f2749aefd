"""DNS, TCP and TLS probes, each turning the usual failures into a cause and a fix."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct

from clickstream_ops.check.results import ServiceChecks

# PostgreSQL's SSLRequest: length 8, then the magic request code 80877103.
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


async def check_dns(checks: ServiceChecks, hosts: list[str], variable: str) -> bool:
    loop = asyncio.get_running_loop()
    found: list[str] = []
    for host in hosts:
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            checks.fail(
                "dns",
                f"{host} does not resolve ({exc})",
                f"check the host name in {variable}; a powered-off Aiven service has no DNS name",
            )
            return False
        addresses = sorted({str(info[4][0]) for info in infos})
        found.append(f"{host} → {', '.join(addresses[:3])}")
    checks.ok("dns", "; ".join(found))
    return True


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


async def check_tcp(
    checks: ServiceChecks, endpoints: list[tuple[str, int]], variable: str, wait_s: float
) -> bool:
    for host, port in endpoints:
        try:
            async with asyncio.timeout(wait_s):
                _, writer = await asyncio.open_connection(host, port)
        except ConnectionRefusedError:
            checks.fail(
                "tcp",
                f"{host}:{port} refused the connection (nothing listens on that port)",
                f"check the port in {variable} and that the service is running",
            )
            return False
        except TimeoutError:
            checks.fail(
                "tcp",
                f"{host}:{port} did not answer within {wait_s:g}s",
                "a firewall or the service's IP allow-list drops the traffic; "
                "add this machine's address to the allow-list",
            )
            return False
        except OSError as exc:
            checks.fail("tcp", f"{host}:{port}: {exc.strerror or exc}", f"check {variable}")
            return False
        await _close(writer)
    checks.ok("tcp", ", ".join(f"{h}:{p} accepts connections" for h, p in endpoints))
    return True


def _tls_failure(checks: ServiceChecks, where: str, exc: Exception, ca_variable: str) -> None:
    if isinstance(exc, ssl.SSLCertVerificationError):
        checks.fail(
            "tls",
            f"{where}: server certificate not accepted ({exc.verify_message})",
            f"{ca_variable} must be this service's CA certificate (Aiven: ca.pem of the project)"
            if "hostname" not in (exc.verify_message or "")
            else "connect with the host name the certificate was issued for",
        )
    elif isinstance(exc, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(exc).upper():
        checks.fail(
            "tls",
            f"{where}: the server does not speak TLS on this port",
            "use the service's TLS port, or turn TLS off for a plaintext endpoint",
        )
    elif isinstance(exc, ssl.SSLError):
        checks.fail(
            "tls",
            f"{where}: handshake failed ({exc.reason or exc})",
            "a rejected client certificate shows up here: check the certificate and key files",
        )
    elif isinstance(exc, TimeoutError):
        checks.fail("tls", f"{where}: no TLS handshake", "the port is not a TLS port")
    else:
        checks.fail("tls", f"{where}: {exc}", "retry; the connection dropped mid-handshake")


def _describe(writer: asyncio.StreamWriter, verified: bool) -> str:
    ssl_object = writer.get_extra_info("ssl_object")
    version = ssl_object.version() if ssl_object is not None else "TLS"
    peer = writer.get_extra_info("peercert") or {}
    until = f", certificate valid until {peer['notAfter']}" if "notAfter" in peer else ""
    return f"{version}{until}" + ("" if verified else " (certificate not verified)")


async def check_tls(
    checks: ServiceChecks,
    host: str,
    port: int,
    context: ssl.SSLContext,
    ca_variable: str,
    wait_s: float,
) -> bool:
    """A direct TLS handshake (Kafka, HTTPS) against the configured CA."""
    try:
        async with asyncio.timeout(wait_s):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        _tls_failure(checks, f"{host}:{port}", exc, ca_variable)
        return False
    checks.ok("tls", f"{host}:{port} " + _describe(writer, context.verify_mode != ssl.CERT_NONE))
    await _close(writer)
    return True


async def check_postgres_tls(
    checks: ServiceChecks,
    host: str,
    port: int,
    context: ssl.SSLContext,
    ca_variable: str,
    wait_s: float,
) -> bool | None:
    """PostgreSQL negotiates TLS in-band (SSLRequest); None when the server offers no TLS."""
    try:
        async with asyncio.timeout(wait_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_PG_SSL_REQUEST)
            await writer.drain()
            answer = await reader.readexactly(1)
            if answer != b"S":
                await _close(writer)
                return None
            await writer.start_tls(context, server_hostname=host)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        _tls_failure(checks, f"{host}:{port}", exc, ca_variable)
        return False
    checks.ok("tls", f"{host}:{port} " + _describe(writer, context.verify_mode != ssl.CERT_NONE))
    await _close(writer)
    return True


def unverified_context() -> ssl.SSLContext:
    """What libpq's sslmode=require does: encrypt, trust any certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
