"""All of the aggregator's SQL: offsets and fencing, dedupe, session upserts, dead letters.

Every statement is parameterised and set-based (one statement per batch and
table, rows passed as arrays through ``unnest``). Lock order inside a batch
transaction is fixed: offset rows (by partition), then dedupe rows, then session
rows in ``session_id`` order, so replicas never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from clickstream_aggregator.rows import COUNTED_TYPES
from clickstream_aggregator.validate import DeadLetter, PartitionRange


@dataclass(frozen=True, slots=True)
class Claim:
    """What a replica learns when it takes a partition: its fencing epoch and where to start."""

    partition: int
    epoch: int
    next_offset: int | None


async def claim_partitions(
    conn: asyncpg.Connection,
    group: str,
    topic: str,
    log_starts: Mapping[int, int],
    owner: str,
) -> dict[int, Claim]:
    """Bump the epoch of each partition (fencing out its previous owner) and read its offset.

    A partition never committed starts at its log-start offset, written here so
    that the stored offset is never NULL and every batch can be checked for
    contiguity against it.
    """
    partitions = sorted(log_starts)
    rows = await conn.fetch(
        """
        INSERT INTO consumer_offsets AS o
            (group_id, topic, partition, next_offset, epoch, owner, assigned_at)
        SELECT $1, $2, t.p, t.start, 1, $5, now()
        FROM unnest($3::int[], $4::bigint[]) AS t(p, start) ORDER BY t.p
        ON CONFLICT (group_id, topic, partition) DO UPDATE
            SET epoch = o.epoch + 1, owner = EXCLUDED.owner, assigned_at = now(),
                next_offset = coalesce(o.next_offset, EXCLUDED.next_offset)
        RETURNING partition, epoch, next_offset
        """,
        group,
        topic,
        partitions,
        [log_starts[p] for p in partitions],
        owner,
    )
    return {r["partition"]: Claim(r["partition"], r["epoch"], r["next_offset"]) for r in rows}


@dataclass(frozen=True, slots=True)
class OffsetCheck:
    """Partitions a batch may not write.

    ``fenced``: another replica claimed them since (a higher epoch is stored).
    ``unclaimed``: the stored claim is older than ours: the database lost it
    (restored from a backup, or a crash with ``synchronous_commit=off``).
    ``stale``: the stored offset is not where the batch starts (→ the stored one).
    """

    fenced: set[int]
    unclaimed: set[int]
    stale: dict[int, int]

    def __bool__(self) -> bool:
        return bool(self.fenced or self.unclaimed or self.stale)


async def lock_offsets(
    conn: asyncpg.Connection,
    group: str,
    topic: str,
    epochs: Mapping[int, int],
    ranges: Mapping[int, PartitionRange],
) -> OffsetCheck:
    """Lock the batch's offset rows (in partition order) and check the batch may commit."""
    rows = await conn.fetch(
        """
        SELECT partition, epoch, next_offset FROM consumer_offsets
        WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])
        ORDER BY partition
        FOR UPDATE
        """,
        group,
        topic,
        sorted(ranges),
    )
    found = {r["partition"]: r for r in rows}
    check = OffsetCheck(set(), set(), {})
    for partition, span in ranges.items():
        row = found.get(partition)
        mine = epochs.get(partition, 0)  # 0: not ours at all, so any stored claim wins
        if row is None or row["epoch"] < mine:
            check.unclaimed.add(partition)
        elif row["epoch"] > mine:
            check.fenced.add(partition)
        elif row["next_offset"] != span.first:
            check.stale[partition] = row["next_offset"]
    return check


async def advance_offsets(
    conn: asyncpg.Connection, group: str, topic: str, ranges: Iterable[PartitionRange]
) -> None:
    spans = sorted(ranges, key=lambda r: r.partition)
    await conn.execute(
        """
        UPDATE consumer_offsets AS o SET next_offset = t.next, updated_at = now()
        FROM unnest($3::int[], $4::bigint[]) AS t(partition, next)
        WHERE o.group_id = $1 AND o.topic = $2 AND o.partition = t.partition
        """,
        group,
        topic,
        [r.partition for r in spans],
        [r.next for r in spans],
    )


async def record_event_ids(
    conn: asyncpg.Connection, event_ids: Sequence[str], event_times_ms: Sequence[int]
) -> frozenset[UUID]:
    """Remember the batch's event ids; return those already applied before (duplicates).

    The event time is kept only to prune old ids, so milliseconds suffice.
    """
    status: str = await conn.execute(
        """
        INSERT INTO processed_events (event_id, event_time)
        SELECT i, to_timestamp(t / 1000.0) FROM unnest($1::uuid[], $2::bigint[]) AS u(i, t)
        ON CONFLICT (event_id) DO NOTHING
        """,
        event_ids,
        event_times_ms,
    )
    if int(status.rsplit(" ", 1)[-1]) == len(event_ids):
        return frozenset()  # the common case: nothing seen before, one statement
    # Rows this transaction inserted carry its id in xmin; the others were there before.
    rows = await conn.fetch(
        """
        SELECT event_id::text AS event_id FROM processed_events
        WHERE event_id = ANY($1::uuid[]) AND xmin <> pg_current_xact_id()::xid
        """,
        event_ids,
    )
    return frozenset(UUID(r["event_id"]) for r in rows)


_COUNT_COLUMNS = ", ".join(f"{t}_count" for t in COUNTED_TYPES)
_COUNT_VALUES = ", ".join(f"b.{t}" for t in COUNTED_TYPES)
_COUNT_ARRAYS = ", ".join(f"${17 + i}::int[]" for i in range(len(COUNTED_TYPES)))
_COUNT_NAMES = ", ".join(COUNTED_TYPES)
_COUNT_UPDATES = ",\n    ".join(
    f"{t}_count = s.{t}_count + EXCLUDED.{t}_count" for t in COUNTED_TYPES
)


def _union(column: str) -> str:
    # Most batches add nothing new to a session's sets (same referrer, revisited
    # pages): containment is a cheap C check that skips the merge.
    return (
        f"{column} = CASE WHEN s.{column} @> EXCLUDED.{column} THEN s.{column} "
        f"ELSE clickstream_sorted_union(s.{column}, EXCLUDED.{column}) END"
    )


def _earliest(column: str) -> str:
    # Attributes of the earliest event: an equal timestamp keeps the stored
    # value, which was consumed first.
    return (
        f"{column} = CASE WHEN EXCLUDED.first_event_timestamp < s.first_event_timestamp "
        f"THEN EXCLUDED.{column} ELSE s.{column} END"
    )


_UPSERT_SESSIONS = f"""
INSERT INTO session_metrics AS s (
    session_id, user_id, total_events, first_event_timestamp, last_event_timestamp,
    unique_pages, total_revenue, products_viewed, search_queries, referrers,
    user_agent, ip_address, entry_page, exit_page, device_type, country, updated_at,
    {_COUNT_COLUMNS}
)
SELECT
    b.session_id, b.user_id, b.total_events, b.first_ts, b.last_ts,
    b.pages::jsonb, b.revenue, b.products::jsonb, b.queries::jsonb, b.referrers::jsonb,
    b.user_agent, b.ip::inet, b.entry_page, b.exit_page, b.device_type, b.country, now(),
    {_COUNT_VALUES}
FROM unnest(
    $1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[],
    $6::text[], $7::numeric[], $8::text[], $9::text[], $10::text[],
    $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
    {_COUNT_ARRAYS}
) AS b(
    session_id, user_id, total_events, first_ts, last_ts,
    pages, revenue, products, queries, referrers,
    user_agent, ip, entry_page, exit_page, device_type, country,
    {_COUNT_NAMES}
)
ORDER BY b.session_id
ON CONFLICT (session_id) DO UPDATE SET
    total_events = s.total_events + EXCLUDED.total_events,
    first_event_timestamp = LEAST(s.first_event_timestamp, EXCLUDED.first_event_timestamp),
    last_event_timestamp = GREATEST(s.last_event_timestamp, EXCLUDED.last_event_timestamp),
    {_union("unique_pages")},
    {_union("products_viewed")},
    {_union("referrers")},
    total_revenue = s.total_revenue + EXCLUDED.total_revenue,
    search_queries = s.search_queries || EXCLUDED.search_queries,
    {_earliest("user_id")},
    {_earliest("user_agent")},
    {_earliest("ip_address")},
    {_earliest("entry_page")},
    {_earliest("device_type")},
    {_earliest("country")},
    -- the exit page is the latest event's; on a tie the later consumed one
    exit_page = CASE WHEN EXCLUDED.last_event_timestamp >= s.last_event_timestamp
        THEN EXCLUDED.exit_page ELSE s.exit_page END,
    {_COUNT_UPDATES},
    updated_at = now()
"""


async def upsert_sessions(conn: asyncpg.Connection, columns: Sequence[Sequence[Any]]) -> None:
    """Merge a batch's session rows (``rows.session_columns``) into ``session_metrics``."""
    if columns and columns[0]:
        await conn.execute(_UPSERT_SESSIONS, *columns)


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
        # PostgreSQL text cannot hold NUL; the original bytes are kept as they are.
        [d.error_message.replace("\x00", "\\0") for d in letters],
    )


async def prune_event_ids(conn: asyncpg.Connection, older_than: datetime) -> int:
    status: str = await conn.execute(
        "DELETE FROM processed_events WHERE event_time < $1", older_than
    )
    return int(status.rsplit(" ", 1)[-1])


# --- dead-letter relay -------------------------------------------------------


async def lock_if_owner(
    conn: asyncpg.Connection, group: str, topic: str, partition: int, epoch: int
) -> bool:
    """Lock one partition's offset row if this replica still owns it (same epoch)."""
    found = await conn.fetchval(
        """
        SELECT 1 FROM consumer_offsets
        WHERE group_id = $1 AND topic = $2 AND partition = $3 AND epoch = $4
        FOR UPDATE
        """,
        group,
        topic,
        partition,
        epoch,
    )
    return found is not None


async def last_relayed_dlq_offset(
    conn: asyncpg.Connection, topic: str, partition: int
) -> int | None:
    value: int | None = await conn.fetchval(
        """
        SELECT max(dlq_offset) FROM dead_letters
        WHERE source_topic = $1 AND source_partition = $2 AND relayed_at IS NOT NULL
        """,
        topic,
        partition,
    )
    return value


async def pending_dead_letters(
    conn: asyncpg.Connection, topic: str, partition: int, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT id, source_offset, message_key, message_value, message_timestamp_ms,
               reason, error_class, error_message
        FROM dead_letters
        WHERE source_topic = $1 AND source_partition = $2 AND relayed_at IS NULL
        ORDER BY source_offset
        LIMIT $3
        """,
        topic,
        partition,
        limit,
    )
    return rows


async def mark_relayed(
    conn: asyncpg.Connection,
    topic: str,
    partition: int,
    source_offsets: Sequence[int],
    dlq_partitions: Sequence[int],
    dlq_offsets: Sequence[int],
) -> int:
    """Mark outbox rows as present in the dead-letter topic at the given positions."""
    status: str = await conn.execute(
        """
        UPDATE dead_letters AS d
        SET relayed_at = now(), dlq_partition = t.dlq_partition, dlq_offset = t.dlq_offset
        FROM unnest($3::bigint[], $4::int[], $5::bigint[])
            AS t(source_offset, dlq_partition, dlq_offset)
        WHERE d.source_topic = $1 AND d.source_partition = $2
          AND d.source_offset = t.source_offset AND d.relayed_at IS NULL
        """,
        topic,
        partition,
        list(source_offsets),
        list(dlq_partitions),
        list(dlq_offsets),
    )
    return int(status.rsplit(" ", 1)[-1])
