"""``clickstream-aggregator``: the service entrypoint."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from clickstream_aggregator import repository as repo
from clickstream_aggregator.deadletter import DeadLetterRelay
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.pipeline import Aggregator
from clickstream_aggregator.prepare import tune_gc
from clickstream_aggregator.retry import Backoff, cause, is_transient
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_aggregator.source import Ownership, create_consumer
from clickstream_aggregator.workers import Preparer
from clickstream_runtime import logs
from clickstream_runtime.entrypoint import serve
from clickstream_runtime.health import Readiness, serve_health
from clickstream_runtime.kafka_tls import explain_kafka_tls_failure
from clickstream_runtime.settings import load
from clickstream_runtime.tls import TlsFileError

log = structlog.get_logger()

_FINAL_DRAIN_S = 5.0


async def _connect(
    settings: AggregatorSettings,
    stop: asyncio.Event,
    readiness: Readiness,
    metrics: AggregatorMetrics,
) -> asyncpg.Pool | None:
    """Create the pool and migrate, waiting (with backoff) while PostgreSQL is unreachable."""
    backoff = Backoff.from_settings(settings)
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                **settings.postgres_connect_options(),
                min_size=1,
                max_size=settings.aggregator_pool_size,
                server_settings={
                    "application_name": f"clickstream-aggregator/{settings.aggregator_replica_id}"
                },
            )
            async with pool.acquire() as conn:
                await migrate(conn)
        except ssl.SSLCertVerificationError as error:
            raise TlsFileError(
                "POSTGRES_SSLROOTCERT",
                settings.postgres_sslrootcert or Path("(system CAs)"),
                f"PostgreSQL's certificate does not verify against it ({error.verify_message})",
            ) from None
        except Exception as error:
            if not is_transient(error):
                raise
            metrics.retries.labels(cause=cause(error)).inc()
            readiness.set("postgres", False, repr(error))
            readiness.enter_retry(f"postgres: {error!r}")
            log.warning("postgres_waiting", error=repr(error), attempt=backoff.attempts + 1)
            if not await backoff.wait(stop):
                return None
            continue
        readiness.leave_retry()
        readiness.set("postgres", True)
        return pool


async def _start_consumer(consumer: AIOKafkaConsumer, settings: AggregatorSettings) -> None:
    try:
        await consumer.start()
    except KafkaConnectionError:
        # aiokafka only says "Unable to bootstrap": name the TLS file if it is the reason.
        await explain_kafka_tls_failure(settings)
        raise


async def _dead_letter_clients(
    stack: AsyncExitStack, settings: AggregatorSettings
) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
    """The relay's producer and the reader it checks the dead-letter topic's tail with."""
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=5)
    stack.push_async_callback(producer.stop)
    await producer.start()
    tail_reader = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    stack.push_async_callback(tail_reader.stop)
    await tail_reader.start()
    return producer, tail_reader


async def run(settings: AggregatorSettings, stop: asyncio.Event) -> None:
    readiness = Readiness(
        ("postgres", "kafka", "assigned"),
        retry_threshold_s=settings.aggregator_ready_retry_threshold_s,
    )
    metrics = AggregatorMetrics.create(readiness)
    log.info(
        "aggregator_starting",
        topic=settings.kafka_topic,
        group=settings.kafka_group_id,
        replica=settings.aggregator_replica_id,
        postgres=f"{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_database}",
        kafka_tls=settings.kafka_uses_tls,
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            serve_health(settings.metrics_host, settings.metrics_port, metrics.registry, readiness)
        )
        pool = await _connect(settings, stop, readiness, metrics)
        if pool is None:
            return
        stack.push_async_callback(pool.close)

        in_flight = asyncio.Lock()
        dead_letters = asyncio.Event()
        consumer = create_consumer(settings)

        async def claim(log_starts: dict[int, int]) -> dict[int, repo.Claim]:
            backoff = Backoff.from_settings(settings)
            while True:
                try:
                    async with pool.acquire() as conn:
                        return await repo.claim_partitions(
                            conn,
                            settings.kafka_group_id,
                            settings.kafka_topic,
                            log_starts,
                            settings.aggregator_replica_id,
                        )
                except Exception as error:
                    if not is_transient(error) or stop.is_set():
                        raise
                    metrics.retries.labels(cause=cause(error)).inc()
                    log.warning("claim_retry", error=repr(error))
                    await backoff.wait(stop)

        def on_change(owned: set[int]) -> None:
            metrics.assigned_partitions.set(len(owned))
            readiness.set("assigned", True)  # joined the group (an idle replica may own none)
            dead_letters.set()  # new partitions may have outbox rows to reconcile

        ownership = Ownership(settings.kafka_topic, consumer, claim, in_flight, on_change)
        consumer.subscribe([settings.kafka_topic], listener=ownership)
        # Leaving the group on exit lets the others take over at once; registered
        # before start so that a failed start still closes the client.
        stack.push_async_callback(consumer.stop)
        await _start_consumer(consumer, settings)
        readiness.set("kafka", True)

        producer, tail_reader = await _dead_letter_clients(stack, settings)

        relay = DeadLetterRelay(
            settings, pool, producer, tail_reader, ownership, metrics, dead_letters
        )
        preparer = await stack.enter_async_context(
            Preparer(
                settings.kafka_topic,
                max_bytes=settings.aggregator_max_message_bytes,
                workers=settings.aggregator_decode_workers,
            )
        )
        aggregator = Aggregator(
            settings,
            pool,
            consumer,
            preparer,
            ownership,
            in_flight,
            metrics,
            readiness,
            dead_letters,
        )
        relay_task = asyncio.create_task(relay.run(stop), name="dead-letter-relay")
        try:
            await aggregator.run(stop)
        finally:
            stop.set()
            dead_letters.set()  # wake the relay so it sees the stop at once
            await relay_task
            # Drain the outbox once more so a clean stop leaves nothing pending,
            # bounded so that SIGTERM still exits promptly if PostgreSQL is down.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(relay.sweep(asyncio.Event()), timeout=_FINAL_DRAIN_S)
    log.info("aggregator_stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="clickstream-aggregator",
        description="Consume the clickstream topic and keep exactly-once session metrics in "
        "PostgreSQL. Configured by environment variables (see README).",
    )
    parser.parse_args(argv)
    settings = load(AggregatorSettings)
    logs.configure("aggregator", level=settings.log_level, fmt=settings.log_format)
    tune_gc()
    serve(run, settings)
