"""Pin a failure to the message that caused it, never to its batch.

When preparing a batch or upserting its rows fails with an error the failure
policy calls ``PIN`` (a value PostgreSQL or a client cannot hold), the batch
is split in halves until each failure is narrowed to one message. That
message is dead-lettered with reason ``unstorable``; every other message of
the batch is applied as if the culprit had never been there.

The split applies the messages in consumption order, chunk after chunk, each
chunk in a savepoint of the batch transaction: a chunk that passes stays
applied, so a failure that only shows in combination (a session's revenue
overflowing its column) is pinned on the message that tips it over, exactly
as applying the messages one by one would. Both searches cost about twice the
batch's work plus two statements per halving, and run only when something failed.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
import structlog

from clickstream_aggregator import repository as repo
from clickstream_aggregator.batch import Batch
from clickstream_aggregator.policy import Verdict, verdict
from clickstream_aggregator.prepare import Prepared, prepare
from clickstream_aggregator.records import MessageKey, Refusal
from clickstream_schema import InvalidEvent, decode

log = structlog.get_logger()


def find_unpreparable(batch: Batch, max_bytes: int) -> dict[MessageKey, Refusal]:
    """The messages that make :func:`prepare` itself fail, each found alone.

    Preparing is pure and per message (aggregating two valid events cannot fail
    where each alone passes), so halving until one message is left finds them
    all. The batch's ``rejects`` are included. Pure, so a worker process can run
    it (the caller logs what it found: :func:`log_unstorable`).
    """
    culprits: dict[MessageKey, Refusal] = dict(batch.rejects)

    def search(keys: list[MessageKey]) -> None:
        try:
            prepare(batch.topic, batch.only(keys), max_bytes, reject=culprits)
        except Exception as error:
            if verdict(error) is not Verdict.PIN:
                raise
            if len(keys) == 1:
                culprits[keys[0]] = Refusal.of(error)
                return
            middle = len(keys) // 2
            search(keys[:middle])
            search(keys[middle:])

    search(batch.message_keys())
    return culprits


def log_unstorable(culprits: dict[MessageKey, Refusal]) -> None:
    for key, refusal in culprits.items():
        log.warning(
            "message_unstorable",
            partition=key[0],
            offset=key[1],
            error_class=refusal.error_class,
            error=refusal.error_message[:300],
            action="dead_lettered",
        )


class SequentialApply:
    """Applies a batch's session rows chunk by chunk, dead-lettering what PostgreSQL refuses."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        batch: Batch,
        max_bytes: int,
        applied_before: frozenset[UUID],
    ) -> None:
        self._conn = conn
        self._batch = batch
        self._max_bytes = max_bytes
        self._applied: set[UUID] = set(applied_before)
        self._applied_before = applied_before
        self._culprits: dict[MessageKey, Refusal] = dict(batch.rejects)

    async def run(self) -> tuple[Batch, Prepared]:
        """Apply what can be applied; the batch with its culprits, and what it committed."""
        await self._apply(self._batch.message_keys())
        new = {k: r for k, r in self._culprits.items() if k not in self._batch.rejects}
        await self._forget(new)
        batch = self._batch.with_rejects(new)
        # Counts, dead letters and ids of what was applied, without writing rows again.
        prepared = prepare(
            batch.topic, batch.partitions(), self._max_bytes, self._applied_before, batch.rejects
        )
        return batch, prepared

    async def _apply(self, keys: list[MessageKey]) -> None:
        if not keys:
            return
        try:
            chunk = prepare(
                self._batch.topic,
                self._batch.only(keys),
                self._max_bytes,
                frozenset(self._applied),
                self._culprits,
            )
            async with self._conn.transaction():  # a savepoint inside the batch transaction
                await repo.upsert_sessions(self._conn, chunk.session_rows)
        except Exception as error:
            if verdict(error) is not Verdict.PIN:
                raise
            if len(keys) == 1:
                self._culprits[keys[0]] = _pinned(keys[0], error)
                return
            middle = len(keys) // 2
            await self._apply(keys[:middle])
            await self._apply(keys[middle:])
            return
        self._applied.update(chunk.event_ids())

    async def _forget(self, culprits: dict[MessageKey, Refusal]) -> None:
        # A refused event was not applied: its id must not make a later copy a
        # "duplicate". Ids another message of the batch applied stay.
        ids = {
            event_id
            for key in culprits
            if (event_id := _event_id(self._batch, key)) is not None
            and event_id not in self._applied
        }
        if ids:
            await repo.forget_event_ids(self._conn, sorted(ids))


def _event_id(batch: Batch, key: MessageKey) -> UUID | None:
    raw = batch.raw[key[0]]
    value = raw.values[raw.offsets.index(key[1])]
    try:
        return decode(value).event_id
    except InvalidEvent:
        return None


def _pinned(key: MessageKey, error: BaseException) -> Refusal:
    refusal = Refusal.of(error)
    log_unstorable({key: refusal})
    return refusal
