"""Relays the dead-letter outbox (PostgreSQL) to the dead-letter topic.

One *round* relays up to ``_BATCH`` rows of one source partition in one
PostgreSQL transaction holding that partition's relay lock (an advisory lock,
not the offset row: batches never wait for the relay's Kafka I/O): check the
claim epoch; get the partition's producer (``producers``: with transactions a
new claim's producer fences the previous owner's); reconcile (``reconcile``);
send (``sender``) to dead-letter partition ``source_partition % dlq_partitions``
and mark what Kafka acknowledged.

Failures are the failure policy's (``clickstream_aggregator.policy``): a sweep
runs in its retry loop, so outages (``RETRY``: PostgreSQL or Kafka away, a
round PostgreSQL ended for waiting too long on Kafka) are retried with backoff
and never stop the relay. One partition's outage does not hold the others: the
sweep goes on to the next partition and the outage is retried once every
partition was tried. A copy Kafka refuses (``PIN``) is pinned to its row
(``relay_attempts``: the next copy is headers only, after a second refusal the
row is set aside, pending and visible) so that the partition's later rows
still flow. Anything else (``STOP``) is a bug or a broken deployment: the relay
logs ``dead_letter_relay_failed``, sets ``stop`` (the service shuts down) and
raises.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from clickstream_aggregator import repository as repo
from clickstream_aggregator.deadletters.copies import build_copy
from clickstream_aggregator.deadletters.health import CONDITION, Owned, PendingWatch
from clickstream_aggregator.deadletters.producers import RelayProducers
from clickstream_aggregator.deadletters.reconcile import Reconciler
from clickstream_aggregator.deadletters.sender import write_round
from clickstream_aggregator.deadletters.tail import TailStopped
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.policy import Retrying, Stopping, Verdict, verdict
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_runtime.health import Readiness

log = structlog.get_logger()

_BATCH = 500
_SWEEP_S = 5.0
# A frozen relay must not hold the relay lock for ever: PostgreSQL ends its
# transaction, the next owner's relay proceeds and reconciles with the tail.
_IDLE_TIMEOUT = "15s"
# Waiting longer for another relay of the same partition (the previous owner
# finishing a round) than this is pointless: try again at the next sweep.
_LOCK_WAIT = "2s"
_METADATA_S = 10.0
_CANCEL_GRACE_S = 2.0
#: Characters of the first error quoted in the ``dead_lettered`` line (the row keeps it all).
_ERROR_QUOTED = 300


@dataclass
class _Round:
    """What one round did; ``error`` is raised after its transaction committed."""

    sent: list[int] = field(default_factory=list)  # source offsets copied and marked
    reconciled: int = 0
    scanning: bool = False  # reconcile read part of a long partition: go on
    scanned_to: int | None = None  # where reconcile's read ended
    refused: dict[int, str] = field(default_factory=dict)
    error: BaseException | None = None
    #: Why the sent rows were dead-lettered: {reason: rows}, and the first one's error.
    reasons: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None


class DeadLetterRelay:
    def __init__(
        self,
        settings: AggregatorSettings,
        pool: asyncpg.Pool,
        producers: RelayProducers,
        tail_reader: AIOKafkaConsumer,
        ownership: Owned,
        metrics: AggregatorMetrics,
        readiness: Readiness,
        wake: asyncio.Event,
    ) -> None:
        self._s = settings
        self._pool = pool
        self._producers = producers
        self._reader = tail_reader
        self._ownership = ownership
        self._metrics = metrics
        self._readiness = readiness
        self._wake = wake
        # Its failures are counted and logged; readiness is the watch's to say.
        self._retrying = Retrying("dead_letter_relay", "kafka", settings, metrics, None)
        self._reconciler = Reconciler(tail_reader, settings.kafka_topic, settings.kafka_dlq_topic)
        self.watch = PendingWatch(
            settings.kafka_topic,
            pool,
            ownership,
            metrics,
            readiness,
            max_age_s=settings.aggregator_dlq_ready_max_age_s,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop``; on a failure that is not an outage, set ``stop`` and raise."""
        watching = asyncio.create_task(self.watch.run(stop), name="dead-letter-watch")
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=_SWEEP_S)
                self._wake.clear()
                await _until(self.sweep(stop), stop)
                if watching.done():
                    watching.result()  # the watch only ends early by raising
        except Exception as error:
            log.error("dead_letter_relay_failed", error=repr(error), policy="stop")
            self._readiness.set(CONDITION, False, f"relay failed: {error!r}")
            stop.set()
            raise
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watching

    async def sweep(self, stop: asyncio.Event) -> None:
        """Relay every pending row of every partition this replica owns, outages retried."""
        try:
            await self._retrying.run(lambda: self._sweep_once(stop), stop)
        except (Stopping, TailStopped):
            return

    async def _sweep_once(self, stop: asyncio.Event) -> None:
        """Each owned partition in turn; the first outage is raised after the last partition."""
        owned = dict(self._ownership.epochs)
        await self._producers.keep_only(set(owned))
        self._reconciler.keep_only(owned)
        outage: Exception | None = None
        for partition, epoch in sorted(owned.items()):
            try:
                await self._relay_partition(partition, epoch, stop)
            except Exception as error:
                if verdict(error) is not Verdict.RETRY:
                    raise
                log.info("dead_letter_relay_deferred", partition=partition, error=repr(error))
                outage = outage or error
        if outage is not None:
            raise outage

    async def _relay_partition(self, partition: int, epoch: int, stop: asyncio.Event) -> None:
        """Rounds of one partition while there is more to do right away."""
        while not stop.is_set():
            try:
                busy = await self._round(partition, epoch, stop)
            except (ProducerFenced, InvalidProducerEpoch):
                # Another replica's producer took this partition's transactional
                # id (it owns the partition now; the epoch check will say so), or
                # the round outlasted the transaction timeout: start afresh.
                log.warning("dead_letter_relay_fenced", partition=partition, epoch=epoch)
                await self._producers.discard(partition)
                return
            except asyncpg.exceptions.LockNotAvailableError:
                log.info("dead_letter_relay_busy", partition=partition)
                return
            if not busy:
                return

    async def _round(self, partition: int, epoch: int, stop: asyncio.Event) -> bool:
        """One round for one partition; True if there may be more to do right away."""
        topic = self._s.kafka_topic
        done = _Round()
        async with self._pool.acquire() as conn, conn.transaction():
            await repo.limit_round(conn, _IDLE_TIMEOUT, _LOCK_WAIT)
            if not await repo.lock_relay_if_owner(
                conn, self._s.kafka_group_id, topic, partition, epoch
            ):
                return False
            if not await repo.pending_dead_letters(conn, topic, partition, 1):
                return False
            # Before reconciling: a new transactional producer fences the old owner's.
            producer, transactional = await self._producers.get(partition, epoch)
            dlq_partition = await self._dlq_partition(producer, partition)
            if not transactional:
                # Copies an abandoned round (an error, a stop) handed to the shared
                # producer must have landed, or failed, before the tail is read.
                await asyncio.wait_for(producer.flush(), timeout=_METADATA_S)
            # Every round, not once: a send whose mark was lost (a dropped
            # connection, a crash) must be found in the topic, not sent again.
            found = await self._reconciler.run(conn, partition, epoch, dlq_partition, stop)
            done.reconciled, done.scanned_to = found.marked, found.position
            done.scanning = not found.complete
            # A long partition read only in part: mark what was found, read on next round.
            rows = (
                []
                if done.scanning
                else await repo.pending_dead_letters(conn, topic, partition, _BATCH)
            )
            if rows:
                await self._send(
                    conn, producer, transactional, partition, dlq_partition, rows, done
                )
        # Only now: had the transaction rolled back, the copies reconcile found
        # would be unmarked again, and must be found again.
        self._remember_scan(partition, epoch, done)
        self._report(partition, dlq_partition, done)
        if done.error is not None:
            raise done.error
        return done.scanning or len(done.sent) + len(done.refused) >= _BATCH or bool(done.refused)

    async def _send(
        self,
        conn: asyncpg.Connection,
        producer: AIOKafkaProducer,
        transactional: bool,
        partition: int,
        dlq_partition: int,
        rows: Sequence[asyncpg.Record],
        done: _Round,
    ) -> None:
        topic = self._s.kafka_topic
        budget = self._s.aggregator_dlq_max_message_bytes
        copies = [
            (
                row["source_offset"],
                build_copy(topic, partition, row, max_bytes=budget, refused=row["relay_attempts"]),
            )
            for row in rows
        ]
        try:
            written = await write_round(
                producer, transactional, self._s.kafka_dlq_topic, dlq_partition, copies
            )
        except BaseException:
            if transactional:
                # The next producer's start aborts whatever this one left open.
                await self._producers.discard(partition)
            raise
        acked = sorted(written.acked.items())
        if acked:
            await repo.mark_relayed(
                conn,
                topic,
                partition,
                [offset for offset, _ in acked],
                [where.partition for _, where in acked],
                [where.offset for _, where in acked],
            )
        if written.refused:
            await repo.record_relay_refusals(conn, topic, partition, written.refused)
        for offset, copy in copies:
            if offset in written.acked and copy.kind != "full":
                self._metrics.dead_letters_cut.labels(kind=copy.kind).inc()
        done.sent = [offset for offset, _ in acked]
        by_offset = {row["source_offset"]: row for row in rows}
        for offset in done.sent:
            reason = str(by_offset[offset]["reason"])
            done.reasons[reason] = done.reasons.get(reason, 0) + 1
        if done.sent:
            done.first_error = str(by_offset[done.sent[0]]["error_message"])[:_ERROR_QUOTED]
        done.refused = dict(written.refused)
        done.error = written.failure

    async def _dlq_partition(self, producer: AIOKafkaProducer, partition: int) -> int:
        partitions = await asyncio.wait_for(
            producer.partitions_for(self._s.kafka_dlq_topic), timeout=_METADATA_S
        )
        if not partitions:
            raise RuntimeError(f"dead-letter topic {self._s.kafka_dlq_topic!r} does not exist")
        ordered: Sequence[int] = sorted(partitions)
        return ordered[partition % len(ordered)]

    def _remember_scan(self, partition: int, epoch: int, done: _Round) -> None:
        if done.scanned_to is not None:
            self._reconciler.remember(partition, epoch, done.scanned_to)

    def _report(self, partition: int, dlq_partition: int, done: _Round) -> None:
        if done.scanning:
            log.info(
                "dead_letter_reconcile_progress", partition=partition, position=done.scanned_to
            )
        if done.reconciled:
            log.info(
                "dead_letter_reconciled", partition=partition, already_in_topic=done.reconciled
            )
        if done.sent:
            self._metrics.dead_letters_relayed.inc(len(done.sent))
            # A warning: these messages were not counted, and the reason says why
            # (the design's producer without its fields once filled this silently).
            log.warning(
                "dead_lettered",
                partition=partition,
                rows=len(done.sent),
                reasons=done.reasons,
                first_error=done.first_error,
                dlq_partition=dlq_partition,
                first_offset=done.sent[0],
                last_offset=done.sent[-1],
            )
        for offset, error in sorted(done.refused.items()):
            log.warning(
                "dead_letter_copy_refused", partition=partition, source_offset=offset, error=error
            )


async def _until(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run ``work``; when ``stop`` is set first, cancel it (waiting at most a moment)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        stopped.cancel()
    if task.done():
        task.result()
        return
    # A round cut short is safe: its transaction rolls back, and copies that
    # reached Kafka unmarked are found by the next reconcile.
    task.cancel()
    with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
        await asyncio.wait_for(asyncio.shield(task), timeout=_CANCEL_GRACE_S)
