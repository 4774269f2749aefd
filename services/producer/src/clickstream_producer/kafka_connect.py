"""Reaching Kafka at start: wait while it is unreachable, give up only if told to.

The broker may come up after the producer (a compose stack, a restart): each
failed attempt is one ``kafka_waiting`` line (attempt, error, next try), readiness
says why it is false, and the attempts back off up to ``_MAX_DELAY_S``. With
``PRODUCER_STARTUP_TIMEOUT_S`` > 0 the producer gives up after that long with
:class:`KafkaUnreachable`; with 0 (the default) it waits until stopped.
A TLS file the broker rejects is not waited for: it is named at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    UnknownError,
)

from clickstream_producer.metrics import KAFKA
from clickstream_producer.settings import ProducerSettings
from clickstream_producer.stopping import done_before_stop
from clickstream_runtime.entrypoint import Explained, bounded
from clickstream_runtime.health import Readiness
from clickstream_runtime.kafka_tls import explain_kafka_tls_failure
from clickstream_runtime.probes import describe

log = structlog.get_logger()

_FIRST_DELAY_S: Final = 0.5
_MAX_DELAY_S: Final = 10.0
_CLOSE_S: Final = 2.0
#: What "Kafka is not there (yet)" looks like; anything else is not waited for.
_UNREACHABLE: Final = (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    OSError,
    TimeoutError,
)


class KafkaUnreachable(Exception):
    """Kafka did not answer within ``PRODUCER_STARTUP_TIMEOUT_S``."""


class IdempotenceUnavailable(Explained):
    """``KAFKA_ENABLE_IDEMPOTENCE=true`` on a broker that cannot do it: say so, with the fix."""


async def connect(
    settings: ProducerSettings,
    stop: asyncio.Event,
    readiness: Readiness,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[AIOKafkaProducer, list[int]] | None:
    """A started producer and the topic's partitions, or ``None`` if stopped first."""
    limit = settings.producer_startup_timeout_s
    began = clock()
    attempt = 0
    while not stop.is_set():
        attempt += 1
        producer = AIOKafkaProducer(**settings.producer_options())
        remaining = limit - (clock() - began) if limit else None
        try:
            partitions = await _start(producer, settings, stop, remaining)
        except _UNREACHABLE as error:
            await bounded(producer.stop(), _CLOSE_S, "kafka producer")
            reason = describe(error)
            readiness.set(KAFKA, False, reason)
            waited = clock() - began
            if limit and waited >= limit:
                raise KafkaUnreachable(
                    f"Kafka at {settings.kafka_bootstrap_servers} did not answer within "
                    f"{limit:g}s (PRODUCER_STARTUP_TIMEOUT_S): {reason}"
                ) from None
            delay = min(_MAX_DELAY_S, _FIRST_DELAY_S * 2 ** min(attempt - 1, 10))
            if limit:
                delay = min(delay, max(0.0, limit - waited))
            log.warning(
                "kafka_waiting",
                attempt=attempt,
                error=reason,
                servers=settings.kafka_bootstrap_servers,
                retry_in_s=round(delay, 1),
                waited_s=round(waited, 1),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            continue
        except UnknownError as error:
            await bounded(producer.stop(), _CLOSE_S, "kafka producer")
            if not settings.kafka_enable_idempotence:
                raise
            # aiokafka only says "[Error -1] UnknownError" (the broker's answer to InitProducerId).
            raise IdempotenceUnavailable(
                f"Kafka at {settings.kafka_bootstrap_servers} refused an idempotent producer "
                f"({type(error).__name__} to InitProducerId): this broker cannot do idempotence "
                "(the embedded test broker cannot); set KAFKA_ENABLE_IDEMPOTENCE=false, or use "
                "a broker that can (Apache Kafka, Aiven)"
            ) from None
        except BaseException:
            await bounded(producer.stop(), _CLOSE_S, "kafka producer")
            raise
        if partitions is None:  # stopped during the attempt
            await bounded(producer.stop(), _CLOSE_S, "kafka producer")
            return None
        if attempt > 1:
            log.info("kafka_reached", attempt=attempt, waited_s=round(clock() - began, 1))
        return producer, partitions
    return None


async def _start(
    producer: AIOKafkaProducer,
    settings: ProducerSettings,
    stop: asyncio.Event,
    remaining_s: float | None,
) -> list[int] | None:
    """Start ``producer`` and learn the topic's partitions; ``None`` if ``stop`` came first."""
    attempt = asyncio.ensure_future(_start_and_describe(producer, settings))
    if await done_before_stop(attempt, stop, remaining_s):
        try:
            return attempt.result()
        except _Exit as wrapped:
            raise wrapped.exit from None
    attempt.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await attempt
    if stop.is_set():
        return None
    raise TimeoutError("no answer before the start-up timeout")


class _Exit(Exception):
    """A ``SystemExit`` carried out of a task (raised in a task, it would stop the loop)."""

    def __init__(self, exit: SystemExit) -> None:
        super().__init__(str(exit))
        self.exit = exit


async def _start_and_describe(producer: AIOKafkaProducer, settings: ProducerSettings) -> list[int]:
    try:
        await producer.start()
    except KafkaConnectionError:
        # aiokafka only says "Unable to bootstrap": name the TLS file if it is the reason.
        try:
            await explain_kafka_tls_failure(settings)
        except SystemExit as rejected:  # TlsFileError: a configuration error, not waited for
            raise _Exit(rejected) from None
        raise
    partitions = sorted(await producer.partitions_for(settings.kafka_topic))
    if not partitions:
        raise KafkaTimeoutError(f"topic {settings.kafka_topic!r} has no partitions (yet)")
    return partitions
