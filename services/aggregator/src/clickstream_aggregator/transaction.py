"""A prepared batch → one PostgreSQL transaction, and every decision about committing it.

This module is the one owner of the commit decision. :class:`Committer`
decides what becomes of a batch: which partitions it may still write (revoked,
fenced or known stale since the fetch: dropped, and the rest prepared again),
what a rejected attempt means (fenced: the partitions are dropped; unclaimed:
claimed again; stale: the consumer seeks), and when an attempt is repeated (the
failure policy's ``RETRY``; ids an earlier batch applied: prepared again
without them). :func:`check_offsets` reads the stored offset rows the same way
for every attempt.

One attempt (:meth:`BatchTransaction.attempt`) locks the batch's offset rows and
checks epochs and offsets first; only a batch that may write goes on to record
its event ids (the dedupe), merge its session rows, add its dead letters to the
outbox and advance the offsets. Every batch is prepared before its transaction
begins: no decoding or aggregating happens while it holds row locks. If the
dedupe finds ids applied before (rare: a producer retry, a replayed topic; the
unique index refuses them), the attempt rolls back and the batch is prepared
again without them, outside any transaction. The one exception is the pinning search
(:class:`~clickstream_aggregator.pinning.SequentialApply`), which needs the
transaction's savepoints and runs only when PostgreSQL refused a row.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg
import structlog

from clickstream_aggregator import repository as repo
from clickstream_aggregator.batch import Batch, Ready
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.ownership import Ownership
from clickstream_aggregator.pinning import SequentialApply
from clickstream_aggregator.policy import Retrying, Stopping, Verdict, verdict
from clickstream_aggregator.positions import Positions
from clickstream_aggregator.prepare import Prepared
from clickstream_aggregator.records import PartitionRange
from clickstream_aggregator.workers import Preparer

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Committed:
    """The batch is in PostgreSQL (``replayed``: by an earlier attempt whose reply was lost)."""

    batch: Batch
    events: int
    duplicates: int
    dead_letters: dict[str, int] = field(default_factory=dict)
    newest: datetime | None = None
    replayed: bool = False
    #: Events given an id derived from their bytes (their message had none).
    derived_ids: int = 0
    #: Session rows written, one update (or insert) per session the batch
    #: touched: about half of what a full batch costs PostgreSQL, more of a
    #: small one's (docs/performance.md).
    sessions: int = 0

    @classmethod
    def of(cls, batch: Batch, prepared: Prepared, *, replayed: bool = False) -> Committed:
        reasons: dict[str, int] = {}
        for letter in prepared.dead_letters:
            reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
        return cls(
            batch,
            prepared.events,
            prepared.duplicates + prepared.excluded,
            reasons,
            prepared.newest,
            replayed,
            prepared.derived_ids,
            prepared.session_rows.count,
        )


@dataclass(frozen=True, slots=True)
class OffsetCheck:
    """What the stored offset rows say about a batch, partition by partition.

    ``fenced``: another replica claimed them since (a higher epoch is stored).
    ``unclaimed``: the stored claim is older than ours: the database lost it
    (restored from a backup, or a crash with ``synchronous_commit=off``).
    ``stale``: the stored offset is not where the batch starts (→ the stored one).
    ``committed``: the stored offset is where the batch ends, under our epoch:
    an earlier attempt of this very batch committed and its reply was lost.
    """

    fenced: set[int] = field(default_factory=set)
    unclaimed: set[int] = field(default_factory=set)
    stale: dict[int, int] = field(default_factory=dict)
    committed: set[int] = field(default_factory=set)

    @property
    def writable(self) -> bool:
        return not (self.fenced or self.unclaimed or self.stale or self.committed)

    @property
    def replayed(self) -> bool:
        # Only this replica writes under its epoch: the stored offset at the
        # batch's end means the earlier attempt committed.
        return bool(self.committed) and not (self.stale or self.unclaimed)


def check_offsets(
    stored: Mapping[int, repo.StoredOffset],
    epochs: Mapping[int, int],
    ranges: Mapping[int, PartitionRange],
) -> OffsetCheck:
    """Whether each partition of a batch may be written, from its locked offset row."""
    check = OffsetCheck()
    for partition, span in ranges.items():
        row = stored.get(partition)
        mine = epochs.get(partition, 0)  # 0: not ours at all, so any stored claim wins
        if row is None or row.epoch < mine:
            check.unclaimed.add(partition)
        elif row.epoch > mine:
            check.fenced.add(partition)
        elif row.next_offset == span.first:
            continue
        elif row.next_offset == span.next and span.next > span.first:
            check.committed.add(partition)
        else:
            check.stale[partition] = row.next_offset
    return check


@dataclass(frozen=True, slots=True)
class Rejected:
    """Nothing was written: some partitions may not be written as fetched (see ``check``)."""

    check: OffsetCheck


@dataclass(frozen=True, slots=True)
class AppliedBefore:
    """Nothing was written: these ids of the batch were applied by an earlier batch."""

    ids: frozenset[UUID]


Outcome = Committed | Rejected | AppliedBefore


class BatchTransaction:
    """One attempt to commit a prepared batch, in one PostgreSQL transaction."""

    def __init__(self, pool: asyncpg.Pool, group: str, max_message_bytes: int) -> None:
        self._pool = pool
        self._group = group
        self._max_bytes = max_message_bytes

    async def attempt(self, ready: Ready, epochs: Mapping[int, int]) -> Outcome:
        batch, prepared = ready.batch, ready.prepared
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                stored = await repo.lock_offsets(
                    conn, self._group, batch.topic, sorted(batch.ranges)
                )
                check = check_offsets(stored, epochs, batch.ranges)
                if check.replayed:
                    return Committed.of(batch, prepared, replayed=True)
                if not check.writable:
                    return Rejected(check)  # nothing was written; the locks go with the transaction
                if prepared.event_rows:
                    await repo.record_event_ids(conn, prepared.event_rows)
                batch, prepared = await self._merge_sessions(conn, ready)
                await repo.insert_dead_letters(conn, prepared.dead_letters)
                await repo.advance_offsets(conn, self._group, batch.topic, batch.ranges.values())
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != repo.DEDUPE_KEY:
                raise
            # Some ids were applied before: which ones, now that the transaction
            # is over. None (pruned meanwhile): the attempt is simply made again.
            async with self._pool.acquire() as conn:
                seen = await repo.applied_event_ids(conn, ready.prepared.event_ids())
            return AppliedBefore(seen)
        return Committed.of(batch, prepared)

    async def _merge_sessions(
        self, conn: asyncpg.Connection, ready: Ready
    ) -> tuple[Batch, Prepared]:
        try:
            async with conn.transaction():  # a savepoint: a refused row must not end the batch
                await repo.upsert_sessions(conn, ready.prepared.session_rows)
        except Exception as error:
            if verdict(error) is not Verdict.PIN:
                raise
            return await SequentialApply(conn, ready.batch, self._max_bytes, ready.exclude).run()
        return ready.batch, ready.prepared


class Committer:
    """Commits prepared batches, deciding what every attempt's outcome means."""

    def __init__(
        self,
        transaction: BatchTransaction,
        preparer: Preparer,
        ownership: Ownership,
        positions: Positions,
        retrying: Retrying,
        metrics: AggregatorMetrics,
    ) -> None:
        self._transaction = transaction
        self._preparer = preparer
        self._ownership = ownership
        self._positions = positions
        self._retrying = retrying
        self._metrics = metrics

    async def prepare(self, batch: Batch, exclude: frozenset[UUID] = frozenset()) -> Ready:
        """Decode and aggregate ``batch``; messages that cannot be prepared are pinned."""
        return await self._preparer.prepare(batch, exclude)

    async def commit(self, ready: Ready, stop: asyncio.Event) -> Committed | None:
        """Commit ``ready`` (retrying what the policy retries) minus partitions it may not write.

        None: nothing of it is left to write, or the service is stopping.
        """
        while True:
            batch = ready.batch
            # Revoked, fenced or known stale since the fetch: not ours to write as fetched.
            gone = {p for p in batch.ranges if p not in self._ownership.epochs}
            gone |= self._positions.outdated(batch.ranges)
            if gone:
                batch = batch.without_partitions(gone)
                if not batch.ranges:
                    return None
                ready = await self.prepare(batch, ready.exclude)
            epochs = dict(self._ownership.epochs)
            attempt = functools.partial(self._transaction.attempt, ready, epochs)
            try:
                outcome = await self._retrying.run(attempt, stop)
            except Stopping:
                log.info("batch_abandoned", reason="stopping", partitions=sorted(batch.ranges))
                return None
            if isinstance(outcome, Committed):
                return outcome
            if isinstance(outcome, AppliedBefore):
                ready = await self.prepare(ready.batch, ready.exclude | outcome.ids)
            else:
                await self._rejected(batch, outcome.check, epochs)

    async def _rejected(self, batch: Batch, check: OffsetCheck, epochs: dict[int, int]) -> None:
        # A claim of our own since the batch was fetched also "fences" it: the
        # partition stays ours, only the batch is old (dropped by the loop above).
        fenced = {p for p in check.fenced if self._ownership.epochs.get(p) == epochs[p]}
        if fenced:
            self._metrics.fenced.inc(len(fenced))
            log.warning("fenced", partitions=sorted(fenced), action="dropped")
            self._ownership.drop(fenced)
        if check.unclaimed:
            log.warning("claim_lost", partitions=sorted(check.unclaimed), action="reclaimed")
            await self._ownership.reclaim(check.unclaimed)
        for partition, stored in check.stale.items():
            self._positions.stale(partition, stored)
            log.info(
                "stale_batch_discarded",
                partition=partition,
                batch_first=batch.ranges[partition].first,
                stored_offset=stored,
            )
