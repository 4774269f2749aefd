"""Sending until done or stopped, then draining and closing: every step bounded after a stop.

After SIGTERM/SIGINT the generating loop gets ``_LOOP_GRACE_S`` to notice (it
can be blocked handing a batch to a client whose broker is gone), the
acknowledgements of what was sent ``_DRAIN_AFTER_STOP_S``, the probe and the
client ``_CLOSE_S`` each: together well inside the 9 s shutdown deadline of
``clickstream_runtime.entrypoint``. What the broker has not acknowledged by then
is counted in one ``events_not_acknowledged`` line and the run ends with
:data:`~clickstream_producer.exits.EXIT_UNACKNOWLEDGED`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Final

import structlog
from aiokafka import AIOKafkaProducer

from clickstream_producer import loops
from clickstream_producer.exits import EXIT_UNACKNOWLEDGED
from clickstream_producer.generation import Chunks
from clickstream_producer.generator import EventGenerator
from clickstream_producer.metrics import KAFKA, ProducerMetrics
from clickstream_producer.progress import Progress
from clickstream_producer.publisher import Publisher
from clickstream_producer.settings import ProducerSettings
from clickstream_producer.stopping import done_before_stop
from clickstream_runtime.entrypoint import bounded
from clickstream_runtime.probes import kafka_probe, keep_probing

log = structlog.get_logger()

#: After a stop: how long the generating loop may take to notice it, how long
#: the acknowledgements of what was sent may take, how long closing the client
#: may take. Together well inside the 9 s shutdown deadline.
_LOOP_GRACE_S: Final = 0.5
_DRAIN_AFTER_STOP_S: Final = 4.0
_CLOSE_S: Final = 1.5
#: Readiness probe of the broker (cluster metadata), with or without traffic.
_PROBE_INTERVAL_S: Final = 2.0
_PROBE_TIMEOUT_S: Final = 2.0


async def publish(
    settings: ProducerSettings,
    generator: EventGenerator | Chunks,
    producer: AIOKafkaProducer,
    partitions: list[int],
    metrics: ProducerMetrics,
    stop: asyncio.Event,
) -> None:
    """Send until done or stopped, then drain and close, each step bounded after a stop."""
    progress = Progress(settings.producer_progress_every, metrics=metrics)
    publisher = Publisher(
        producer,
        settings.kafka_topic,
        partitions,
        on_acked=progress.acked_events,
        on_batch=metrics.batch_sent,
        on_failed=metrics.delivery_failed,
    )
    probing = asyncio.Event()
    probe = asyncio.create_task(
        keep_probing(
            KAFKA,
            kafka_probe(producer.client, settings.kafka_topic),
            metrics.readiness,
            probing,
            interval_s=_PROBE_INTERVAL_S,
            timeout_s=_PROBE_TIMEOUT_S,
        )
    )
    rate, limit = settings.producer_rate, settings.producer_events or math.inf
    work = asyncio.create_task(
        loops.backfill(generator, publisher, progress, stop)
        if isinstance(generator, Chunks)
        else loops.live(
            generator, publisher, progress, stop, limit, rate, settings.producer_linger_ms
        )
    )
    try:
        await _until_done_or_stopped(work, stop)
        await _drain(publisher, stop)
    finally:
        probing.set()
        await publisher.close()
        await bounded(probe, _CLOSE_S, "kafka probe")
        await bounded(producer.stop(), _CLOSE_S, "kafka producer")
    unconfirmed = publisher.unacknowledged()
    progress.finish()
    if unconfirmed:
        log.error(
            "events_not_acknowledged",
            events=unconfirmed,
            sent=progress.sent,
            acked=progress.acked,
            exit_code=EXIT_UNACKNOWLEDGED,
        )
        raise SystemExit(EXIT_UNACKNOWLEDGED)


async def _until_done_or_stopped(work: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Await the generating loop; after a stop give it ``_LOOP_GRACE_S``, then cancel it.

    The loop checks ``stop`` between events, but it waits while the publisher's
    lanes are full, which can last the client's request timeout when the broker is gone.
    """
    if await _finished_within_grace(work, stop, _LOOP_GRACE_S):
        work.result()  # a delivery failure or a bug ends the run with its error


async def _drain(publisher: Publisher, stop: asyncio.Event) -> None:
    """Flush and wait for the acknowledgements, at most ``_DRAIN_AFTER_STOP_S`` after a stop."""
    drain = asyncio.ensure_future(publisher.drain())
    if not await _finished_within_grace(drain, stop, _DRAIN_AFTER_STOP_S):
        return
    if not stop.is_set():
        drain.result()  # a delivery failure ends the run with its error
    elif drain.exception() is not None:
        # Stopping anyway: what failed is counted as not acknowledged.
        log.warning("delivery_failed_while_stopping", error=str(drain.exception()))


async def _finished_within_grace(
    task: asyncio.Future[None], stop: asyncio.Event, grace_s: float
) -> bool:
    """Wait for ``task`` without limit until ``stop``, then at most ``grace_s`` more.

    True when it finished (its result or error is for the caller to read);
    False when it was cancelled for overrunning the grace.
    """
    if not await done_before_stop(task, stop):
        await asyncio.wait({task}, timeout=grace_s)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    return True
