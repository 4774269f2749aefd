"""The batch loop: fetch → prepare (validate, aggregate) → one PostgreSQL transaction.

Each batch commits, in one transaction: the fence check (offset rows locked,
epochs compared), the event-id dedupe, the session upserts, the dead-letter
outbox rows and the new offsets. Only after it commits does anything else
happen (Kafka offset mirror, dead-letter relay, metrics). A failure before the
commit leaves no trace, and the same records are applied again by whoever owns
the partition next.

Failure policy, in this one place: transient errors → retry the same batch with
capped, jittered backoff (never skip); fenced partitions → drop them; a stale
batch → seek back to the stored offset; anything else → stop the service.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError
from aiokafka.structs import OffsetAndMetadata

from clickstream_aggregator import repository as repo
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.prepare import Batch
from clickstream_aggregator.retry import Backoff, cause, is_transient
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_aggregator.source import Ownership
from clickstream_aggregator.validate import RawPartition, Record
from clickstream_aggregator.workers import Preparer
from clickstream_runtime.health import Readiness

log = structlog.get_logger()


@dataclass(slots=True)
class Applied:
    #: what was committed: the fetched batch minus any partition rejected on the way
    batch: Batch
    events: int = 0
    duplicates: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    newest: datetime | None = None


class Aggregator:
    def __init__(
        self,
        settings: AggregatorSettings,
        pool: asyncpg.Pool,
        consumer: AIOKafkaConsumer,
        preparer: Preparer,
        ownership: Ownership,
        in_flight: asyncio.Lock,
        metrics: AggregatorMetrics,
        readiness: Readiness,
        on_dead_letters: asyncio.Event,
    ) -> None:
        self._s = settings
        self._pool = pool
        self._consumer = consumer
        self._preparer = preparer
        self._ownership = ownership
        self._in_flight = in_flight
        self._metrics = metrics
        self._readiness = readiness
        self._on_dead_letters = on_dead_letters
        self._backoff = Backoff.from_settings(settings)
        self._newest: datetime | None = None
        self._next_prune = time.monotonic() + settings.aggregator_prune_interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and validate batch N+1 while batch N's transaction runs in PostgreSQL."""
        committing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                self._ownership.raise_if_failed()
                records = await self._fetch(stop)
                batch = await self._prepare(records) if records else None
                if committing is not None:
                    # One transaction at a time, in fetch order: offsets stay contiguous.
                    await committing
                    committing = None
                if batch is not None:
                    committing = asyncio.create_task(self._commit(batch, stop), name="commit")
                if time.monotonic() >= self._next_prune:
                    await self._prune()
        finally:
            if committing is not None:
                # On stop: finish the batch in flight and commit it, then return.
                await committing

    async def _fetch(self, stop: asyncio.Event) -> dict[int, list[Record]]:
        # getmany() ignores its timeout while a rebalance is in progress, which
        # can last long; racing it with ``stop`` keeps SIGTERM prompt.
        fetching = asyncio.ensure_future(
            self._consumer.getmany(
                timeout_ms=self._s.aggregator_batch_timeout_ms,
                max_records=self._s.aggregator_batch_max_records,
            )
        )
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait((fetching, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not fetching.done():
            fetching.cancel()
            return {}
        try:
            fetched = fetching.result()
        except OffsetOutOfRangeError as error:
            log.error(
                "offset_out_of_range",
                error=repr(error),
                hint="the stored offset is outside the topic's retained log; "
                "inspect consumer_offsets before resetting it by hand",
            )
            raise
        except NoOffsetForPartitionError as error:
            # The fetcher looked for a Kafka-committed offset while the assignment
            # listener was still seeking to the stored one; the seek stands.
            log.debug("kafka_offset_missing", error=repr(error))
            return {}
        self._ownership.raise_if_failed()
        topic = self._s.kafka_topic
        return {tp.partition: msgs for tp, msgs in fetched.items() if tp.topic == topic}

    async def _prepare(self, records: dict[int, list[Record]]) -> Batch | None:
        owned = {p: r for p, r in records.items() if p in self._ownership.epochs and r}
        if not owned:
            return None
        batch = Batch(self._s.kafka_topic, {p: RawPartition.of(p, r) for p, r in owned.items()})
        # In a worker process: this process meanwhile drives the transaction in flight.
        batch.prepared = await self._preparer.prepare(batch)
        return batch

    async def _commit(self, batch: Batch, stop: asyncio.Event) -> None:
        async with self._in_flight:
            # Partitions revoked since the fetch are simply not ours to write.
            gone = {p for p in batch.ranges if p not in self._ownership.epochs}
            if gone:
                batch = batch.without_partitions(gone)
            started = time.perf_counter()
            applied = await self._apply_with_retry(batch, stop)
            elapsed = time.perf_counter() - started
        if applied is None:
            return
        self._after_commit(applied.batch, applied, elapsed)
        await self._mirror_offsets(applied.batch)

    async def _apply_with_retry(self, batch: Batch, stop: asyncio.Event) -> Applied | None:
        while batch.ranges:
            try:
                result = await self._apply(batch)
            except Exception as error:
                if not is_transient(error):
                    log.error("batch_failed", error=repr(error), policy="stop")
                    raise
                label = cause(error)
                self._metrics.retries.labels(cause=label).inc()
                self._readiness.enter_retry(f"{label}: {error!r}")
                log.warning(
                    "batch_retry",
                    cause=label,
                    error=repr(error),
                    attempt=self._backoff.attempts + 1,
                )
                if not await self._backoff.wait(stop):
                    log.info("batch_abandoned", reason="stopping", partitions=sorted(batch.ranges))
                    return None
                continue
            self._backoff.reset()
            self._readiness.leave_retry()
            self._readiness.set("postgres", True)
            if isinstance(result, Applied):
                return result
            batch = await self._reject(batch, result)
        return None

    async def _apply(self, batch: Batch) -> Applied | repo.OffsetCheck:
        if batch.prepared is None:  # partitions were dropped since it was prepared
            batch.prepared = await self._preparer.prepare(batch)
        prepared = batch.prepared
        async with self._pool.acquire() as conn, conn.transaction():
            check = await repo.lock_offsets(
                conn,
                self._s.kafka_group_id,
                batch.topic,
                dict(self._ownership.epochs),
                batch.ranges,
            )
            if check:
                return check  # nothing was written; the locks go with the transaction
            if prepared.event_ids:
                applied_before = await repo.record_event_ids(
                    conn, prepared.event_ids, prepared.event_times_ms
                )
                if applied_before:
                    # Rare (a producer retry, a replayed topic): aggregate again without them.
                    prepared = await self._preparer.prepare(batch, exclude=applied_before)
            await repo.upsert_sessions(conn, prepared.session_rows)
            await repo.insert_dead_letters(conn, prepared.dead_letters)
            await repo.advance_offsets(
                conn, self._s.kafka_group_id, batch.topic, batch.ranges.values()
            )
        reasons: dict[str, int] = {}
        for letter in prepared.dead_letters:
            reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
        return Applied(
            batch,
            prepared.events,
            prepared.duplicates + prepared.excluded,
            reasons,
            prepared.newest,
        )

    async def _reject(self, batch: Batch, check: repo.OffsetCheck) -> Batch:
        if check.fenced:
            self._metrics.fenced.inc(len(check.fenced))
            log.warning("fenced", partitions=sorted(check.fenced), action="dropped")
            self._ownership.drop(check.fenced)
        if check.unclaimed:
            log.warning("claim_lost", partitions=sorted(check.unclaimed), action="reclaimed")
            await self._ownership.claim(check.unclaimed)
        for partition, stored in check.stale.items():
            tp = TopicPartition(batch.topic, partition)
            if tp in self._consumer.assignment():
                self._consumer.seek(tp, stored)
            log.info(
                "stale_batch_discarded",
                partition=partition,
                batch_first=batch.ranges[partition].first,
                stored_offset=stored,
            )
        return batch.without_partitions(check.fenced | check.unclaimed | set(check.stale))

    def _after_commit(self, batch: Batch, applied: Applied, elapsed: float) -> None:
        m = self._metrics
        m.consumed.inc(batch.size)
        m.applied.inc(applied.events)
        m.deduplicated.inc(applied.duplicates)
        for reason, n in applied.dead_letters.items():
            m.dead_lettered.labels(reason=reason).inc(n)
        m.batches.inc()
        m.batch_size.observe(batch.size)
        m.transaction_seconds.observe(elapsed)
        if applied.newest is not None and (self._newest is None or applied.newest > self._newest):
            self._newest = applied.newest
        if self._newest is not None:
            m.freshness.set((datetime.now(UTC) - self._newest).total_seconds())
        for partition, span in batch.ranges.items():
            high = self._consumer.highwater(TopicPartition(batch.topic, partition))
            if high is not None:
                m.lag.labels(partition=str(partition)).set(max(0, high - span.next))
        if applied.dead_letters:
            self._on_dead_letters.set()
        log.info(
            "batch_committed",
            partitions=sorted(batch.ranges),
            offsets=[batch.ranges[p].next for p in sorted(batch.ranges)],
            messages=batch.size,
            applied=applied.events,
            duplicates=applied.duplicates,
            dead_lettered=sum(applied.dead_letters.values()),
            ms=round(elapsed * 1000, 1),
        )

    async def _mirror_offsets(self, batch: Batch) -> None:
        """Copy the committed offsets to Kafka for lag tools; PostgreSQL stays the truth."""
        if not self._s.aggregator_commit_to_kafka:
            return
        assigned = self._consumer.assignment()
        offsets = {
            tp: OffsetAndMetadata(span.next, "")
            for p, span in batch.ranges.items()
            if (tp := TopicPartition(batch.topic, p)) in assigned
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as error:
            log.debug("kafka_offset_mirror_skipped", error=repr(error))

    async def _prune(self) -> None:
        self._next_prune = time.monotonic() + self._s.aggregator_prune_interval_s
        if self._newest is None:
            return
        cutoff = self._newest - timedelta(hours=self._s.aggregator_dedupe_retention_hours)
        try:
            async with self._pool.acquire() as conn:
                removed = await repo.prune_event_ids(conn, cutoff)
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("dedupe_prune_skipped", error=repr(error))
            return
        log.info("dedupe_pruned", older_than=cutoff.isoformat(), rows=removed)
