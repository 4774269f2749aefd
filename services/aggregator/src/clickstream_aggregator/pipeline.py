"""The batch loop: fetch → prepare → one PostgreSQL transaction, pipelined.

Batch N+1 is prepared while batch N's transaction runs and batch N+2 is
fetched; one transaction at a time, in fetch order, so offsets stay contiguous. Whether and
how a batch commits is :mod:`clickstream_aggregator.transaction`'s decision.
Only after a transaction commits does anything else happen (metrics, the Kafka
offset mirror, waking the dead-letter relay). A failure before the commit
leaves no trace, and the same records are applied again by whoever owns the
partition next. What to do with each failure is :mod:`clickstream_aggregator.policy`'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import NoOffsetForPartitionError, OffsetOutOfRangeError

from clickstream_aggregator.batch import Batch, Ready
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.mirror import OffsetMirror
from clickstream_aggregator.ownership import Ownership
from clickstream_aggregator.positions import Positions
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_aggregator.transaction import Committed, Committer

log = structlog.get_logger()

T = TypeVar("T")

#: How long the batch loop spends claiming partitions left pending by a rebalance.
_CLAIM_BUDGET_S = 2.0


class Aggregator:
    def __init__(
        self,
        settings: AggregatorSettings,
        consumer: AIOKafkaConsumer,
        committer: Committer,
        ownership: Ownership,
        positions: Positions,
        mirror: OffsetMirror,
        in_flight: asyncio.Lock,
        metrics: AggregatorMetrics,
        on_dead_letters: asyncio.Event,
        finish_in_flight: Callable[[Awaitable[object]], Awaitable[bool]],
        cut_short_s: float,
    ) -> None:
        """``finish_in_flight`` awaits the batch in flight at a stop, within its budget;
        a claim or a batch being prepared when the stop comes gets ``cut_short_s`` to end."""
        self._s = settings
        self._consumer = consumer
        self._committer = committer
        self._ownership = ownership
        self._positions = positions
        self._mirror = mirror
        self._in_flight = in_flight
        self._metrics = metrics
        self._on_dead_letters = on_dead_letters
        self._finish_in_flight = finish_in_flight
        self._cut_short_s = cut_short_s
        self._newest: datetime | None = None
        metrics.freshness.set_function(self._freshness)

    def _freshness(self) -> float:
        # Computed when scraped: with nothing applied it keeps growing, as it should.
        newest = self._newest
        return 0.0 if newest is None else (datetime.now(UTC) - newest).total_seconds()

    async def run(self, stop: asyncio.Event) -> None:
        committing: asyncio.Task[None] | None = None
        # The next batch is fetched while this one is prepared: unpacking its
        # records (this process) overlaps with preparing (a worker process).
        fetching: asyncio.Future[Batch | None] | None = None
        try:
            while not stop.is_set():
                if fetching is None:
                    fetching = asyncio.ensure_future(self._next_batch(stop))
                batch = await self._unless_stopped(fetching, stop)
                fetching = None
                if batch is None:
                    ready = None
                else:
                    fetching = asyncio.ensure_future(self._next_batch(stop))
                    # Cut short by a stop, the batch is left to the next owner.
                    ready = await self._unless_stopped(
                        self._committer.prepare(batch), stop, fetching
                    )
                if committing is not None:
                    if stop.is_set() and not committing.done():
                        break  # the batch in flight is finished below, within its budget
                    # One transaction at a time, in fetch order: offsets stay contiguous.
                    await committing
                    committing = None
                if ready is not None:
                    committing = asyncio.create_task(self._commit(ready, stop), name="commit")
        finally:
            if fetching is not None:
                # Nothing of a fetched batch is written before it is prepared: drop it.
                fetching.cancel()
                await asyncio.wait({fetching}, timeout=self._cut_short_s)
                if fetching.done() and not fetching.cancelled():
                    fetching.exception()  # retrieved: the loop's own outcome is what counts
            if committing is not None:
                # On stop: finish the batch in flight, within the shutdown budget.
                # Cut short, its transaction rolls back and the next owner applies it.
                await self._finish_in_flight(committing)

    async def _next_batch(self, stop: asyncio.Event) -> Batch | None:
        """Partitions left pending by a rebalance claimed, then the next batch fetched."""
        self._ownership.raise_if_failed()
        await self._unless_stopped(self._ownership.claim_pending(_CLAIM_BUDGET_S), stop)
        return await self._fetch(stop)

    async def _unless_stopped(
        self, work: Awaitable[T], stop: asyncio.Event, *companions: asyncio.Future[Any]
    ) -> T | None:
        """``work``'s result, or None once ``stop`` is set first.

        ``work`` is then cancelled, and ``companions`` with it: one cut-short
        step for all of them.
        """
        task = asyncio.ensure_future(work)
        await _first_of(task, stop)
        if task.done():
            return task.result()
        cut = {task, *companions}
        for each in cut:
            each.cancel()
        await asyncio.wait(cut, timeout=self._cut_short_s)
        return None

    async def _fetch(self, stop: asyncio.Event) -> Batch | None:
        # getmany() ignores its timeout while a rebalance is in progress, which
        # can last long; racing it with ``stop`` keeps SIGTERM prompt.
        fetching = asyncio.ensure_future(
            self._consumer.getmany(
                timeout_ms=self._s.aggregator_batch_timeout_ms,
                max_records=self._s.aggregator_batch_max_records,
            )
        )
        await _first_of(fetching, stop)
        if not fetching.done():
            fetching.cancel()
            return None
        try:
            fetched = fetching.result()
        except NoOffsetForPartitionError as error:
            # The fetcher looked for a Kafka-committed offset while the assignment
            # listener was still seeking to the stored one; the seek stands.
            log.debug("kafka_offset_missing", error=repr(error))
            return None
        except OffsetOutOfRangeError as error:
            # Kafka's answer to a fetch outside its log ({tp: offset}): a doubt, decided below.
            for tp, offset in (dict(error.args[0]) if error.args else {}).items():
                self._positions.refused(tp.partition, offset)
            await self._positions.check_in_range(self._ownership.epochs)
            return None
        self._ownership.raise_if_failed()
        topic = self._s.kafka_topic
        records = {
            tp.partition: msgs
            for tp, msgs in fetched.items()
            if tp.topic == topic and tp.partition in self._ownership.epochs
        }
        raw = await self._positions.raw(records)
        await self._positions.check_in_range(self._ownership.epochs)
        if not raw:
            return None
        epochs = self._ownership.epochs  # a partition revoked meanwhile is dropped at write
        return Batch(topic, raw, claims={p: epochs[p] for p in raw if p in epochs})

    async def _commit(self, ready: Ready, stop: asyncio.Event) -> None:
        async with self._in_flight:
            started = time.perf_counter()
            committed = await self._committer.commit(ready, stop)
            elapsed = time.perf_counter() - started
        if committed is not None:
            self._after_commit(committed, elapsed)

    def _after_commit(self, committed: Committed, elapsed: float) -> None:
        batch = committed.batch
        self._positions.committed(batch.ranges.values())
        self._mirror.note(batch.ranges.values())
        m = self._metrics
        m.consumed.inc(batch.size)
        m.applied.inc(committed.events)
        m.deduplicated.inc(committed.duplicates)
        m.derived_ids.inc(committed.derived_ids)
        for reason, n in committed.dead_letters.items():
            m.dead_lettered.labels(reason=reason).inc(n)
        m.batches.inc()
        m.batch_size.observe(batch.size)
        m.transaction_seconds.observe(elapsed)
        if committed.newest is not None and (
            self._newest is None or committed.newest > self._newest
        ):
            self._newest = committed.newest
        for partition, span in batch.ranges.items():
            high = self._consumer.highwater(TopicPartition(batch.topic, partition))
            if high is not None:
                m.lag.labels(partition=str(partition)).set(max(0, high - span.next))
        if committed.dead_letters:
            self._on_dead_letters.set()
        log.info(
            "batch_committed",
            partitions=sorted(batch.ranges),
            offsets=[batch.ranges[p].next for p in sorted(batch.ranges)],
            messages=batch.size,
            applied=committed.events,
            sessions=committed.sessions,
            duplicates=committed.duplicates,
            derived_ids=committed.derived_ids or None,
            dead_lettered=sum(committed.dead_letters.values()),
            replayed=committed.replayed or None,
            ms=round(elapsed * 1000, 1),
        )


async def _first_of(work: asyncio.Future[Any], stop: asyncio.Event) -> None:
    """Until ``work`` is done or ``stop`` is set; ``work`` is cancelled if this is."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, stopping), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # The caller is cut short (a prefetch dropped at a stop): never orphan the work.
        work.cancel()
        raise
    finally:
        stopping.cancel()
