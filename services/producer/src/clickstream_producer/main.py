"""clickstream-producer: realistic shop sessions, sent to the events topic.

Every option is a flag and an environment variable (flags win)::

    --events N               PRODUCER_EVENTS               0 = until stopped (default)
    --rate R                 PRODUCER_RATE                 events/s, default 10; 0 = backfill
    --seed S                 PRODUCER_SEED                 same seed ⇒ same events and ids
    --users U                PRODUCER_USERS                default 2 × sessions, at least 1000
    --concurrent-sessions C  PRODUCER_CONCURRENT_SESSIONS  default rate × 9.05 s (backfill: 500)
    --progress-every N       PRODUCER_PROGRESS_EVERY       default 10, at most one line per second
    --start ISO-TIME         PRODUCER_START                simulated clock start (backfill)
                             PRODUCER_STARTUP_TIMEOUT_S    give up on Kafka at start; 0 = wait

``--rate R`` delivers R events/s from the start: the simulated population is
sized from the rate (``clickstream_producer.sizing``) and starts in its steady
state (``clickstream_producer.generator``).

Simulated clock: with ``--rate R > 0`` it starts when the first event can be
sent and events are released when the wall clock reaches their timestamps.
With ``--rate 0`` it starts at ``--start`` or, by default, at now minus the
simulated span of the run (``events × 9.05 s / concurrent sessions``) so the
backfill ends near now; an endless backfill starts one hour ago. See
``clickstream_producer.clock``.

A backfill generates in ``PRODUCER_GENERATOR_WORKERS`` worker processes (default
2; see ``clickstream_producer.generation``).

Kafka unreachable at start: ``kafka_waiting`` lines with backoff until it
answers, or until ``PRODUCER_STARTUP_TIMEOUT_S`` (then ``kafka_unreachable``,
exit 4). SIGINT/SIGTERM stop generating, flush and wait at most 4 s for the
acknowledgements of what was sent; exit codes in ``clickstream_producer.exits``.

``METRICS_PORT`` (default 9101, 0 = off) serves ``/metrics``, ``/healthz`` and
``/readyz`` (``kafka`` follows a metadata probe every 2 s, with or without
traffic, and turns false when a delivery fails).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import random
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from clickstream_producer.clock import simulated_start
from clickstream_producer.exits import EXIT_KAFKA_UNREACHABLE
from clickstream_producer.generation import Chunks, GeneratorSpec
from clickstream_producer.generator import MEAN_EVENT_GAP_S, EventGenerator
from clickstream_producer.kafka_connect import KafkaUnreachable, connect
from clickstream_producer.loops import build_live
from clickstream_producer.metrics import KAFKA, ProducerMetrics
from clickstream_producer.publishing import publish
from clickstream_producer.settings import ProducerSettings
from clickstream_producer.sizing import size_for
from clickstream_runtime.entrypoint import serve
from clickstream_runtime.health import serve_health
from clickstream_runtime.logs import configure
from clickstream_runtime.settings import load

log = structlog.get_logger()

#: Settings field -> the flag that sets it, so errors name what the user typed.
FLAGS: Final = {
    "producer_events": "--events",
    "producer_rate": "--rate",
    "producer_seed": "--seed",
    "producer_users": "--users",
    "producer_concurrent_sessions": "--concurrent-sessions",
    "producer_progress_every": "--progress-every",
    "producer_start": "--start",
}


def _parser() -> argparse.ArgumentParser:
    # Values stay text: the settings check them, so a bad one is reported as
    # typed, together with every other problem (``--rate -5: must be at least 0``).
    parser = argparse.ArgumentParser(
        prog="clickstream-producer",
        description="Realistic shop sessions, sent to the events topic.",
        epilog=(
            "--rate R delivers R events/s from the start: users and concurrent sessions are "
            "sized from the rate and the simulation starts in its steady state. With --rate 0 "
            "the simulated clock advances by think times without waiting, starting at --start "
            "or, by default, at now minus the run's simulated span so that the backfill ends "
            "near now (endless backfill: one hour ago). Kafka settings come from KAFKA_* "
            "variables; PRODUCER_STARTUP_TIMEOUT_S bounds the wait for Kafka at start. "
            "Exit codes: 0 done or stopped with everything acknowledged, 1 failed, "
            "3 shutdown deadline, 4 Kafka unreachable at start, 5 stopped with events "
            "not acknowledged."
        ),
    )
    parser.add_argument(
        "--events", metavar="N", help="events to send, 0 = until stopped [PRODUCER_EVENTS]"
    )
    parser.add_argument(
        "--rate", metavar="R", help="events/s, 0 = backfill as fast as possible [PRODUCER_RATE, 10]"
    )
    parser.add_argument(
        "--seed", metavar="S", help="seed of the event sequence [PRODUCER_SEED, random]"
    )
    parser.add_argument(
        "--users",
        metavar="U",
        help="simulated users [PRODUCER_USERS, 2 × concurrent sessions, at least 1000]",
    )
    parser.add_argument(
        "--concurrent-sessions",
        metavar="C",
        help=(
            "sessions under way at once [PRODUCER_CONCURRENT_SESSIONS, "
            f"rate × {MEAN_EVENT_GAP_S:g} s, backfill 500]"
        ),
    )
    parser.add_argument(
        "--progress-every",
        metavar="N",
        help="log progress every N events, ≤1/s [PRODUCER_PROGRESS_EVERY, 10]",
    )
    parser.add_argument(
        "--start",
        metavar="ISO-TIME",
        help="ISO 8601 start of a backfill's simulated clock, with offset [PRODUCER_START]",
    )
    return parser


def settings_from(argv: list[str] | None) -> ProducerSettings:
    """The settings from the environment and ``argv``; errors name the flags typed."""
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {
        f"producer_{name}": value for name, value in vars(args).items() if value is not None
    }
    return load(ProducerSettings, flags=FLAGS, **overrides)


def main(argv: list[str] | None = None) -> None:
    settings = settings_from(argv)
    configure("producer", level=settings.log_level, fmt=settings.log_format)
    serve(run, settings)


async def run(
    settings: ProducerSettings, stop: asyncio.Event, *, metrics: ProducerMetrics | None = None
) -> None:
    """Generate and publish until ``--events`` are acknowledged or ``stop`` is set.

    ``metrics`` lets a caller (a test) keep the registry after the run ends; by
    default each run has its own. Ends with ``SystemExit`` (code and one log
    line) when Kafka stays unreachable or a stop leaves events unacknowledged.
    """
    if metrics is None:
        metrics = ProducerMetrics.create()
    # The seed is the only thing drawn from the OS; everything after derives from it.
    seed = settings.producer_seed
    if seed is None:
        seed = random.SystemRandom().getrandbits(63)
    rate = settings.producer_rate
    sizing = size_for(
        rate,
        mean_gap_s=MEAN_EVENT_GAP_S,
        users=settings.producer_users,
        concurrent_sessions=settings.producer_concurrent_sessions,
    )
    if sizing.hint is not None:
        log.warning(
            "rate_above_session_capacity",
            rate=rate,
            expected_rate=round(sizing.expected_rate, 1),
            hint=sizing.hint,
        )
    if rate > 0 and settings.producer_start is not None:
        # Honouring it would release a backlog at the capped rate that never drains.
        log.warning(
            "start_ignored",
            start=settings.producer_start.isoformat(),
            reason="--start sets a backfill's clock (--rate 0); a live run starts it with "
            "its first event, already in the steady state",
        )
    start = simulated_start(
        datetime.now(UTC),
        rate=rate,
        events=settings.producer_events,
        concurrent_sessions=sizing.concurrent_sessions,
        mean_gap_s=MEAN_EVENT_GAP_S,
        start=settings.producer_start,
    )
    spec = GeneratorSpec(seed, sizing.users, sizing.concurrent_sessions, start)
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
            built = await build_live(spec, stop)
            if built is None:
                log.info("stopped_before_start")
                return
            generator = built
            # The population and sessions live as long as the process: keep them
            # out of the collector's full scans (a pause would delay events).
            gc.collect()
            gc.freeze()
        else:
            workers = settings.producer_generator_workers
            generator = await stack.enter_async_context(Chunks(spec, limit, workers=workers))
        try:
            connected = await connect(settings, stop, metrics.readiness)
        except KafkaUnreachable as error:
            log.error("kafka_unreachable", reason=str(error), exit_code=EXIT_KAFKA_UNREACHABLE)
            raise SystemExit(EXIT_KAFKA_UNREACHABLE) from None
        if connected is None:
            log.info("stopped_before_kafka_answered")
            return
        producer, partitions = connected
        log.info(
            "producer_starting",
            topic=settings.kafka_topic,
            seed=seed,
            rate=rate,
            events=settings.producer_events,
            users=sizing.users,
            concurrent_sessions=sizing.concurrent_sessions,
            # Live, the simulated clock starts with the first event (see loops.live).
            start=None if isinstance(generator, EventGenerator) else start.isoformat(),
        )
        metrics.readiness.set(KAFKA, True)
        await publish(settings, generator, producer, partitions, metrics, stop)
