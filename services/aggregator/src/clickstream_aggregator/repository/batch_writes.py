"""What a batch transaction writes besides its offsets: event ids, session rows, dead letters.

Also the id deletion of the pinning search (:func:`forget_event_ids`), which
runs inside the batch's transaction too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Final
from uuid import UUID

import asyncpg

from clickstream_aggregator import dedupe_rows
from clickstream_aggregator.records import DeadLetter
from clickstream_aggregator.session_columns import UPSERT_COLUMNS, SessionRows

#: The dedupe table's unique index: a violation of it means an id was applied before.
DEDUPE_KEY: Final = "processed_events_pkey"
#: ``session_metrics``' primary key: a violation of it means another transaction
#: inserted the session meanwhile (see :func:`upsert_sessions`).
SESSIONS_KEY: Final = "session_metrics_pkey"


async def record_event_ids(conn: asyncpg.Connection, rows: bytes) -> None:
    """Remember the batch's event ids (``dedupe_rows``), none of which may have been applied before.

    A binary ``COPY``, not ``INSERT ... ON CONFLICT DO NOTHING``: a speculative
    insertion writes one more WAL record per row (its confirmation), and ``COPY``
    writes a page's rows in one record. Ids seen before are rare (a producer
    retry, a replayed topic); one that was raises ``UniqueViolationError`` on
    :data:`DEDUPE_KEY`, which ends the transaction, and the caller then asks
    :func:`applied_event_ids` which ones, outside it. The rows come sorted by
    id, so concurrent batches lock index entries in the same order. Pruning
    goes by ``applied_at`` (the database's clock, the column default); the
    event time is kept for reports only.
    """
    await conn.copy_to_table(
        "processed_events",
        source=_one_chunk(dedupe_rows.copy_payload(rows)),
        columns=list(dedupe_rows.COLUMNS),
        format="binary",
    )


async def _one_chunk(payload: bytes) -> AsyncIterator[bytes]:
    # An asynchronous iterable, not a file object: the driver reads a file in a
    # thread of the default executor, chunk by chunk, for bytes already in memory.
    yield payload


async def applied_event_ids(conn: asyncpg.Connection, event_ids: Sequence[UUID]) -> frozenset[UUID]:
    """Those of ``event_ids`` that the dedupe table holds (applied by a committed batch)."""
    rows = await conn.fetch(
        "SELECT event_id::text AS event_id FROM processed_events WHERE event_id = ANY($1::uuid[])",
        event_ids,
    )
    return frozenset(UUID(r["event_id"]) for r in rows)


def _upsert_sql() -> str:
    # The rows arrive as one JSON array of arrays (``SessionRows``), parsed once.
    read = {"text": "(e->>{})", "int8": "(e->>{})::int8", "jsonb": "(e->{})"}
    values = ", ".join(
        f"{c.sql.format(read[c.kind].format(at))} AS {c.name}"
        for at, c in enumerate(UPSERT_COLUMNS)
    )
    names = ", ".join(c.name for c in UPSERT_COLUMNS)
    # The merge rules name the batch's row EXCLUDED, as an upsert would.
    updates = ",\n        ".join(
        f"{c.name} = {c.merge.replace('EXCLUDED.', 'b.')}" for c in UPSERT_COLUMNS[1:]
    )
    # The rows come sorted by session_id, the insert's order below; a join
    # that walks the batch meets the stored rows in that order too, but the
    # planner may choose another join (a deadlock is retried, see policy).
    return f"""
WITH b AS MATERIALIZED (
    SELECT {values}
    FROM jsonb_array_elements(convert_from($1::bytea, 'UTF8')::jsonb) AS e
),
updated AS (
    UPDATE session_metrics AS s SET
        {updates},
        updated_at = now()
    FROM b
    WHERE s.session_id = b.session_id
    RETURNING s.session_id
)
INSERT INTO session_metrics ({names}, updated_at)
SELECT b.*, now()
FROM b
WHERE NOT EXISTS (SELECT FROM updated WHERE updated.session_id = b.session_id)
ORDER BY b.session_id
"""


_UPSERT_SESSIONS: Final = _upsert_sql()


async def upsert_sessions(conn: asyncpg.Connection, rows: SessionRows) -> None:
    """Merge a batch's session rows (``session_columns.session_rows``) into ``session_metrics``.

    An ``UPDATE`` of the stored sessions, then an ``INSERT`` of the new ones,
    not ``INSERT ... ON CONFLICT DO UPDATE``: the upsert writes a row lock and,
    for a new row, a confirmation to the WAL besides the row itself (about 6 B
    per event). The price is a race the upsert did not have: a session that
    another transaction inserts meanwhile (only a producer that keyed one
    session onto two partitions makes two replicas write one session) fails
    this one on :data:`SESSIONS_KEY`, which the failure policy retries.
    """
    if rows.count:
        await conn.execute(_UPSERT_SESSIONS, rows.json)


async def insert_dead_letters(conn: asyncpg.Connection, letters: Sequence[DeadLetter]) -> None:
    """Record a batch's invalid messages in the outbox, in one statement."""
    if not letters:
        return
    await conn.execute(
        """
        INSERT INTO dead_letters (source_topic, source_partition, source_offset, message_key,
            message_value, message_timestamp_ms, reason, error_class, error_message)
        SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::bytea[],
                             $6::bigint[], $7::text[], $8::text[], $9::text[])
        ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING
        """,
        [d.topic for d in letters],
        [d.partition for d in letters],
        [d.offset for d in letters],
        [d.key for d in letters],
        [d.value for d in letters],
        [d.timestamp_ms for d in letters],
        [d.reason for d in letters],
        [d.error_class for d in letters],
        # PostgreSQL text cannot hold NUL or lone surrogates; the bytes are kept as they are.
        [_storable_text(d.error_message) for d in letters],
    )


def _storable_text(text: str) -> str:
    return text.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


async def forget_event_ids(conn: asyncpg.Connection, event_ids: Sequence[UUID]) -> None:
    """Forget ids this transaction recorded for events it did not apply after all."""
    await conn.execute("DELETE FROM processed_events WHERE event_id = ANY($1::uuid[])", event_ids)
