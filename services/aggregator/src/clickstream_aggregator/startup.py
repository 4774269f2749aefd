"""Start-up: connect to PostgreSQL and Kafka, waiting for them the same way.

Both waits are the failure policy's retry loop (one ``*_retry`` event per
attempt, readiness false meanwhile), for ever or for
``AGGREGATOR_STARTUP_TIMEOUT_S``; giving up is one :class:`StartupTimeout`
line. A server that answers and refuses (a wrong password, an unknown
database, TLS it does not offer) is not waited for: :class:`StartupRefused`,
one line with the fix, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer

from clickstream_aggregator import repository as repo
from clickstream_aggregator.deadletters import RelayProducers
from clickstream_aggregator.deadletters.producers import stop_bounded
from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.policy import Retrying, Stopping, Verdict, verdict
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_runtime.entrypoint import Explained, bounded
from clickstream_runtime.kafka_tls import explain_kafka_tls_failure
from clickstream_runtime.tls import TlsFileError

#: A client closed at shutdown gets this long.
CLOSE_S = 1.0


class StartupTimeout(Explained, RuntimeError):
    """A dependency did not answer within ``AGGREGATOR_STARTUP_TIMEOUT_S``."""


class StartupRefused(Explained, RuntimeError):
    """A dependency answered and refused (a password, a database name, TLS): said at once.

    Waiting cannot help, so it is not retried, and the message names the fix.
    """


def _startup_deadline(settings: AggregatorSettings) -> float | None:
    return settings.aggregator_startup_timeout_s or None


async def connect(
    settings: AggregatorSettings, stop: asyncio.Event, retrying: Retrying
) -> asyncpg.Pool:
    """Create the pool and migrate, waiting (with backoff) while PostgreSQL is unreachable."""
    where = f"PostgreSQL at {settings.postgres_host}:{settings.postgres_port}"

    async def connect() -> asyncpg.Pool:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                **settings.postgres_connect_options(),
                min_size=1,
                max_size=settings.aggregator_pool_size,
                server_settings={
                    "application_name": f"clickstream-aggregator/{settings.aggregator_replica_id}",
                    **repo.CONNECTION_SETTINGS,
                },
            )
        except ConnectionError as error:
            # An OSError, which the policy waits out; but no TLS is a refusal.
            refusal = postgres_refusal(error, settings)
            if refusal is None:
                raise
            raise StartupRefused(f"{where} {refusal}") from None
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await bounded(pool.close(), CLOSE_S, "postgres pool")
            raise
        return pool

    try:
        return await retrying.run(connect, stop, deadline_s=_startup_deadline(settings))
    except ssl.SSLCertVerificationError as error:
        raise TlsFileError(
            "POSTGRES_SSLROOTCERT",
            settings.postgres_sslrootcert or Path("(system CAs)"),
            f"PostgreSQL's certificate does not verify against it ({error.verify_message})",
        ) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        refusal = postgres_refusal(error, settings)
        if refusal is not None:
            raise StartupRefused(f"{where} {refusal}") from None
        if verdict(error) is not Verdict.RETRY:  # not waited for: it answered, and said no
            raise StartupRefused(f"{where}: {type(error).__name__}: {error}") from None
        raise StartupTimeout(
            f"{where} did not answer within {settings.aggregator_startup_timeout_s:g}s "
            f"(AGGREGATOR_STARTUP_TIMEOUT_S): {type(error).__name__}: {error}"
        ) from None


def postgres_refusal(error: BaseException, settings: AggregatorSettings) -> str | None:
    """What PostgreSQL refused and the fix, in words; None when it is not a refusal."""
    if isinstance(
        error, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return (
            f"refused the login of {settings.postgres_user}: {error} "
            "(check POSTGRES_USER and POSTGRES_PASSWORD; Aiven: the avnadmin password)"
        )
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return f"refused: {error} (check POSTGRES_DATABASE; Aiven: defaultdb)"
    if isinstance(error, ConnectionError) and "rejected SSL upgrade" in str(error):
        return (
            f"offers no TLS, but POSTGRES_SSLMODE={settings.postgres_sslmode} requires it "
            "(enable ssl on the server, or POSTGRES_SSLMODE=prefer for a local one)"
        )
    return None


async def start_consumer(
    consumer: AIOKafkaConsumer,
    settings: AggregatorSettings,
    stop: asyncio.Event,
    retrying: Retrying,
) -> None:
    async def start() -> None:
        try:
            await consumer.start()
        except Exception:
            # aiokafka only says "Unable to bootstrap": name the TLS file if it is the reason.
            await explain_kafka_tls_failure(settings)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), timeout=CLOSE_S)
            raise

    try:
        await retrying.run(start, stop, deadline_s=_startup_deadline(settings))
    except Stopping:
        raise
    except Exception as error:
        where = f"Kafka at {settings.kafka_bootstrap_servers}"
        if verdict(error) is not Verdict.RETRY:
            raise StartupRefused(f"{where}: {type(error).__name__}: {error}") from None
        raise StartupTimeout(
            f"{where} did not answer within {settings.aggregator_startup_timeout_s:g}s "
            f"(AGGREGATOR_STARTUP_TIMEOUT_S): {type(error).__name__}: {error}"
        ) from None


async def relay_clients(
    stack: AsyncExitStack, settings: AggregatorSettings, *, close_s: float = CLOSE_S
) -> tuple[RelayProducers, AIOKafkaConsumer]:
    """The relay's producers and the reader it checks the dead-letter topic's tail with.

    ``stack`` closes them all at once, each stop within ``close_s``.
    """
    producers = RelayProducers(settings)
    tail_reader = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        isolation_level="read_committed",
    )
    stack.push_async_callback(_close_relay_clients, producers, tail_reader, close_s)
    await asyncio.wait_for(tail_reader.start(), timeout=10.0)
    return producers, tail_reader


async def _close_relay_clients(
    producers: RelayProducers, tail_reader: AIOKafkaConsumer, within_s: float
) -> None:
    await asyncio.gather(
        producers.close(within_s), stop_bounded(tail_reader, "dead-letter reader", within_s)
    )
