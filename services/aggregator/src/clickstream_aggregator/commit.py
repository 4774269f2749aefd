"""One batch, one PostgreSQL transaction: fence check, dedupe, sessions, dead letters, offsets.

The transaction locks the batch's offset rows and compares epochs and offsets
first; only a batch that may write goes on to record its event ids (the dedupe),
merge its session rows, add its dead letters to the outbox and advance the
offsets. Nothing else happens inside it, and nothing outside it happens before
it commits. What it decided is an :data:`Outcome`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg

from clickstream_aggregator import repository as repo
from clickstream_aggregator.pinning import SequentialApply, unpreparable
from clickstream_aggregator.policy import Verdict, verdict
from clickstream_aggregator.prepare import Batch, Prepared
from clickstream_aggregator.workers import Preparer


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
        )


@dataclass(frozen=True, slots=True)
class Rejected:
    """Nothing was written: some partitions may not be written as fetched (see ``check``)."""

    check: repo.OffsetCheck


Outcome = Committed | Rejected


class BatchWriter:
    def __init__(
        self, pool: asyncpg.Pool, preparer: Preparer, group: str, max_message_bytes: int
    ) -> None:
        self._pool = pool
        self._preparer = preparer
        self._group = group
        self._max_bytes = max_message_bytes

    async def prepare(self, batch: Batch) -> None:
        """Decode and aggregate ``batch`` (once); messages that cannot be prepared are pinned."""
        if batch.prepared is not None:
            return
        try:
            batch.prepared = await self._preparer.prepare(batch)
        except Exception as error:
            if verdict(error) is not Verdict.PIN:
                raise
            batch.rejects.update(unpreparable(batch, self._max_bytes))
            batch.prepared = await self._preparer.prepare(batch)

    async def write(self, batch: Batch, epochs: Mapping[int, int]) -> Outcome:
        await self.prepare(batch)
        prepared = batch.prepared
        assert prepared is not None  # prepare() sets it
        async with self._pool.acquire() as conn, conn.transaction():
            check = await repo.lock_offsets(conn, self._group, batch.topic, epochs, batch.ranges)
            if check.committed and not (check.stale or check.unclaimed):
                # Only this replica writes under its epoch: the stored offset at
                # the batch's end means the earlier attempt committed.
                return Committed.of(batch, prepared, replayed=True)
            if not check.writable:
                return Rejected(check)  # nothing was written; the locks go with the transaction
            applied_before: frozenset[UUID] = frozenset()
            if prepared.event_ids:
                applied_before = await repo.record_event_ids(
                    conn, prepared.event_ids, prepared.event_times_ms
                )
                if applied_before:
                    # Rare (a producer retry, a replayed topic): aggregate again without them.
                    prepared = await self._preparer.prepare(batch, exclude=applied_before)
            prepared = await self._merge_sessions(conn, batch, prepared, applied_before)
            await repo.insert_dead_letters(conn, prepared.dead_letters)
            await repo.advance_offsets(conn, self._group, batch.topic, batch.ranges.values())
        return Committed.of(batch, prepared)

    async def _merge_sessions(
        self,
        conn: asyncpg.Connection,
        batch: Batch,
        prepared: Prepared,
        applied_before: frozenset[UUID],
    ) -> Prepared:
        try:
            async with conn.transaction():  # a savepoint: a refused row must not end the batch
                await repo.upsert_sessions(conn, prepared.session_rows)
        except Exception as error:
            if verdict(error) is not Verdict.PIN:
                raise
            return await SequentialApply(conn, batch, self._max_bytes, applied_before).run()
        return prepared
