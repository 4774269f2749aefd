"""TLS probes against local TLS servers made with trustme: right CA, wrong CA, no TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from clickstream_ops.check.network import check_postgres_tls, check_tcp, check_tls
from clickstream_ops.check.results import ServiceChecks, Verdict

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.close()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


async def serve(handler: Handler, context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


@pytest.fixture
async def tls_port(server_context: ssl.SSLContext) -> AsyncIterator[int]:
    async for port in serve(_hold, server_context):
        yield port


@pytest.fixture
async def plain_port() -> AsyncIterator[int]:
    async for port in serve(_hold):
        yield port


def checks() -> ServiceChecks:
    return ServiceChecks("kafka", ("tcp", "tls"))


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_handshake_against_the_configured_ca(ca: trustme.CA, tls_port: int) -> None:
    result = checks()
    assert await check_tls(result, "127.0.0.1", tls_port, client_context(ca), "KAFKA_SSL_CAFILE", 5)
    tls = result.results()[1]
    assert tls.verdict is Verdict.OK
    assert "certificate valid until" in tls.detail


async def test_a_different_ca_names_the_ca_variable(tls_port: int) -> None:
    result = checks()
    wrong = client_context(trustme.CA())
    assert not await check_tls(result, "127.0.0.1", tls_port, wrong, "KAFKA_SSL_CAFILE", 5)
    tls = result.results()[1]
    assert tls.verdict is Verdict.FAIL
    assert "server certificate not accepted" in tls.detail
    assert "KAFKA_SSL_CAFILE" in tls.fix


async def test_tls_against_a_plaintext_port(ca: trustme.CA, plain_port: int) -> None:
    result = checks()
    assert not await check_tls(result, "127.0.0.1", plain_port, client_context(ca), "X", 2)
    assert result.results()[1].verdict is Verdict.FAIL


async def test_tcp_refused_names_the_variable(unused_tcp_port: int) -> None:
    result = checks()
    assert not await check_tcp(result, [("127.0.0.1", unused_tcp_port)], "POSTGRES_PORT", 5)
    tcp = result.results()[0]
    assert "refused" in tcp.detail
    assert "POSTGRES_PORT" in tcp.fix


async def test_postgres_server_without_tls_answers_n(ca: trustme.CA) -> None:
    async def refuse_ssl(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(8)
        writer.write(b"N")
        await writer.drain()
        writer.close()

    async for port in serve(refuse_ssl):
        offered = await check_postgres_tls(
            checks(), "127.0.0.1", port, client_context(ca), "POSTGRES_SSLROOTCERT", 5
        )
        assert offered is None


async def test_postgres_starttls_handshake(ca: trustme.CA, server_context: ssl.SSLContext) -> None:
    async def accept_ssl(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(8) == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
        writer.write(b"S")
        await writer.drain()
        await writer.start_tls(server_context)
        await reader.read(100)
        writer.close()

    async for port in serve(accept_ssl):
        result = checks()
        assert await check_postgres_tls(
            result, "127.0.0.1", port, client_context(ca), "POSTGRES_SSLROOTCERT", 5
        )
        assert result.results()[1].verdict is Verdict.OK
