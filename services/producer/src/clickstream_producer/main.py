"""``clickstream-producer``: realistic shop sessions → the events topic.

Every option is a flag and an environment variable (flags win)::

    --events N               PRODUCER_EVENTS               0 = until stopped (default)
    --rate R                 PRODUCER_RATE                 events/s, default 10; 0 = backfill
    --seed S                 PRODUCER_SEED                 same seed ⇒ same events and ids
    --users U                PRODUCER_USERS                default 1000
    --concurrent-sessions C  PRODUCER_CONCURRENT_SESSIONS  default rate × 9 s (backfill: 500)
    --progress-every N       PRODUCER_PROGRESS_EVERY       default 10, at most one line per second
    --start ISO-TIME         PRODUCER_START                simulated clock start (backfill)

Simulated clock: with ``--rate R > 0`` it starts now and events are released
when the wall clock reaches their timestamps. With ``--rate 0`` it starts at
``--start`` or, by default, at now minus the simulated span of the run
(``events × 9 s / concurrent sessions``) so the backfill ends near now; an
endless backfill starts one hour ago. See ``clickstream_producer.clock``.

A backfill generates in ``PRODUCER_GENERATOR_WORKERS`` worker processes (default
2; see ``clickstream_producer.generation``).

SIGINT/SIGTERM stop generating, flush and wait for the acknowledgements of what
was sent, then exit 0.

``METRICS_PORT`` (default 9101, 0 = off) serves ``/metrics``, ``/healthz`` and
``/readyz`` (ready once the Kafka client has started, not after a failed delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from clickstream_producer.clock import WallPacer, default_concurrency, simulated_start
from clickstream_producer.generation import Chunks, GeneratorSpec
from clickstream_producer.generator import MEAN_EVENT_GAP_S, EventGenerator
from clickstream_producer.metrics import KAFKA, ProducerMetrics
from clickstream_producer.progress import Progress
from clickstream_producer.publisher import Publisher
from clickstream_producer.settings import ProducerSettings
from clickstream_producer.wire import check_matches_contract, encode_record
from clickstream_runtime.entrypoint import serve
from clickstream_runtime.health import serve_health
from clickstream_runtime.kafka_tls import explain_kafka_tls_failure
from clickstream_runtime.logs import configure
from clickstream_runtime.settings import load

log = structlog.get_logger()

#: The live loop's shortest sleep (events are batched for ``PRODUCER_LINGER_MS`` anyway).
_TICK_S: Final = 0.005


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickstream-producer",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        epilog=(
            "Simulated clock: with --rate R>0 it is wall time (start now, human-paced sessions). "
            "With --rate 0 it advances by think times without waiting, starting at --start or, "
            "by default, at now minus the run's simulated span so that the backfill ends near now "
            "(endless backfill: one hour ago). Kafka settings come from KAFKA_* variables."
        ),
    )
    parser.add_argument(
        "--events", type=int, help="events to send, 0 = until stopped [PRODUCER_EVENTS]"
    )
    parser.add_argument(
        "--rate", type=float, help="events/s, 0 = backfill as fast as possible [PRODUCER_RATE, 10]"
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the event sequence [PRODUCER_SEED, random]"
    )
    parser.add_argument("--users", type=int, help="simulated users [PRODUCER_USERS, 1000]")
    parser.add_argument(
        "--concurrent-sessions",
        type=int,
        help=(
            "active sessions [PRODUCER_CONCURRENT_SESSIONS, "
            f"rate × {MEAN_EVENT_GAP_S:g} s, backfill 500]"
        ),
    )
    parser.add_argument(
        "--progress-every",
        type=int,
        help="log progress every N events, ≤1/s [PRODUCER_PROGRESS_EVERY, 10]",
    )
    parser.add_argument(
        "--start", help="ISO 8601 start of the simulated clock, with offset [PRODUCER_START]"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {
        f"producer_{name}": value for name, value in vars(args).items() if value is not None
    }
    settings = load(ProducerSettings, **overrides)
    configure("producer", level=settings.log_level, fmt=settings.log_format)
    serve(run, settings)


async def run(
    settings: ProducerSettings, stop: asyncio.Event, *, metrics: ProducerMetrics | None = None
) -> None:
    """Generate and publish until ``--events`` are acknowledged or ``stop`` is set.

    ``metrics`` lets a caller (a test) keep the registry after the run ends; by
    default each run has its own.
    """
    if metrics is None:
        metrics = ProducerMetrics.create()
    # The seed is the only thing drawn from the OS; everything after derives from it.
    seed = settings.producer_seed
    if seed is None:
        seed = random.SystemRandom().getrandbits(63)
    rate = settings.producer_rate
    concurrency = settings.producer_concurrent_sessions or default_concurrency(
        rate, settings.producer_users, MEAN_EVENT_GAP_S
    )
    start = simulated_start(
        datetime.now(UTC),
        rate=rate,
        events=settings.producer_events,
        concurrent_sessions=min(concurrency, settings.producer_users),
        mean_gap_s=MEAN_EVENT_GAP_S,
        start=settings.producer_start,
    )
    spec = GeneratorSpec(seed, settings.producer_users, concurrency, start)
    # A user is in at most one session at a time, so users cap the concurrency.
    sessions = min(concurrency, settings.producer_users)
    if rate > 0 and sessions / MEAN_EVENT_GAP_S < rate * 0.9:
        log.warning(
            "rate_above_session_capacity",
            rate=rate,
            expected_rate=round(sessions / MEAN_EVENT_GAP_S, 1),
            hint="raise --users / --concurrent-sessions",
        )
    limit = settings.producer_events or math.inf
    async with AsyncExitStack() as stack:
        # First in, last out: probes get answers while connecting and while draining.
        await stack.enter_async_context(
            serve_health(
                settings.metrics_host, settings.metrics_port, metrics.registry, metrics.readiness
            )
        )
        # Generators are built (and worker processes started) before the clock starts.
        generator: EventGenerator | Chunks
        if rate > 0:
            generator = spec.build()
        else:
            workers = settings.producer_generator_workers
            generator = await stack.enter_async_context(Chunks(spec, limit, workers=workers))
        log.info(
            "producer_starting",
            topic=settings.kafka_topic,
            seed=seed,
            rate=rate,
            events=settings.producer_events,
            users=settings.producer_users,
            concurrent_sessions=sessions,
            start=start.isoformat(),
        )
        progress = Progress(settings.producer_progress_every, metrics=metrics)
        producer = AIOKafkaProducer(**settings.producer_options())
        # Registered before start so that a failed start still closes the client.
        stack.push_async_callback(producer.stop)
        try:
            await producer.start()
        except KafkaConnectionError:
            # aiokafka only says "Unable to bootstrap": name the TLS file if it is the reason.
            await explain_kafka_tls_failure(settings)
            raise
        partitions = sorted(await producer.partitions_for(settings.kafka_topic))
        metrics.readiness.set(KAFKA, True)
        publisher = Publisher(
            producer,
            settings.kafka_topic,
            partitions,
            on_acked=progress.acked_events,
            on_batch=metrics.batch_sent,
            on_failed=metrics.delivery_failed,
        )
        # Runs before producer.stop (LIFO): whatever was generated gets delivered.
        stack.push_async_callback(publisher.drain)
        if isinstance(generator, Chunks):
            await _backfill(generator, publisher, progress, stop)
        else:
            await _live(
                generator, publisher, progress, stop, limit, rate, settings.producer_linger_ms
            )
    progress.finish()


async def _backfill(
    chunks: Chunks, publisher: Publisher, progress: Progress, stop: asyncio.Event
) -> None:
    offer = publisher.offer
    while not stop.is_set() and (chunk := await chunks.next()) is not None:
        for key, value, time_ms in zip(chunk.keys, chunk.values, chunk.times_ms, strict=True):
            # offer() is synchronous; only a full batch needs an await.
            while (full := offer(key, value, time_ms)) is not None:
                await publisher.submit(full)
        progress.sent_events(len(chunk))
        # A chunk without a full batch never yields: let the sender and signals run.
        await asyncio.sleep(0)


async def _live(
    generator: EventGenerator,
    publisher: Publisher,
    progress: Progress,
    stop: asyncio.Event,
    limit: float,
    rate: float,
    linger_ms: int,
) -> None:
    pacer = WallPacer(rate)
    linger_s = linger_ms / 1000
    flushed_at = time.monotonic()
    first = True
    while not stop.is_set() and progress.sent < limit:
        delay = pacer.delay(generator.next_time_ms)
        if delay > 0:
            if time.monotonic() - flushed_at >= linger_s:
                await publisher.flush()
                flushed_at = time.monotonic()
            # Never shorter than a tick: at thousands of events/s, waking up per event
            # would cost more than the events; what falls due meanwhile goes together.
            wait_s = max(_TICK_S, min(delay, linger_s))
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait_s)
            continue
        pacer.take()
        records = generator.next_records(1)
        if first:
            check_matches_contract(records)
            first = False
        key, value = encode_record(records[0])
        while (full := publisher.offer(key, value, records[0].time_ms)) is not None:
            await publisher.submit(full)
        progress.sent_events(1)
        if time.monotonic() - flushed_at >= linger_s:
            await publisher.flush()
            flushed_at = time.monotonic()
            await asyncio.sleep(0)
