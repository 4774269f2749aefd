"""All of the aggregator's SQL: offsets and fencing, dedupe, session upserts, dead letters.

Every statement is parameterised and set-based (one statement per batch and
table, rows passed as arrays through ``unnest``). Inside a batch transaction
rows are locked in a fixed order: offset rows by partition, dedupe rows by
event id, session rows by ``session_id``. Two replicas therefore wait for each
other rather than deadlock; a deadlock that PostgreSQL still reports (another
client, a relay) is retried by the failure policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg

from clickstream_aggregator.session_columns import UPSERT_COLUMNS
from clickstream_aggregator.validate import DeadLetter, PartitionRange


@dataclass(frozen=True, slots=True)
class Claim:
    """What a replica learns when it takes a partition: its fencing epoch and where to start."""

    partition: int
    epoch: int
    next_offset: int


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
class StoredOffset:
    """A partition's offset row: the epoch of its last claim and the next offset to apply."""

    epoch: int
    next_offset: int


async def lock_offsets(
    conn: asyncpg.Connection, group: str, topic: str, partitions: Sequence[int]
) -> dict[int, StoredOffset]:
    """Lock the offset rows of ``partitions`` (in partition order) and read them.

    What they mean for a batch is ``transaction.check_offsets``'s to say.
    """
    rows = await conn.fetch(
        """
        SELECT partition, epoch, next_offset FROM consumer_offsets
        WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])
        ORDER BY partition
        FOR UPDATE
        """,
        group,
        topic,
        sorted(partitions),
    )
    return {r["partition"]: StoredOffset(r["epoch"], r["next_offset"]) for r in rows}


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


async def stored_offsets(conn: asyncpg.Connection, group: str, topic: str) -> dict[int, int]:
    """Partition → stored next offset of every partition the group ever committed."""
    rows = await conn.fetch(
        """
        SELECT partition, next_offset FROM consumer_offsets
        WHERE group_id = $1 AND topic = $2 AND next_offset IS NOT NULL
        """,
        group,
        topic,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def record_event_ids(
    conn: asyncpg.Connection, event_ids: Sequence[str], event_times_ms: Sequence[int]
) -> frozenset[UUID]:
    """Remember the batch's event ids; return those already applied before (duplicates).

    ``event_ids`` come sorted (``prepare`` sorts them), so concurrent batches
    lock index entries in the same order. Pruning goes by ``applied_at`` (the
    database's clock, the column default); the event time is kept for reports only.
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


def _upsert_sql() -> str:
    names = [c.name for c in UPSERT_COLUMNS]
    arrays = ", ".join(f"${i}::{c.array_type}[]" for i, c in enumerate(UPSERT_COLUMNS, 1))
    values = ", ".join(f"b.{c.name}::{c.cast}" if c.cast else f"b.{c.name}" for c in UPSERT_COLUMNS)
    updates = ",\n    ".join(f"{c.name} = {c.merge}" for c in UPSERT_COLUMNS[1:])
    return f"""
INSERT INTO session_metrics AS s ({", ".join(names)}, updated_at)
SELECT {values}, now()
FROM unnest({arrays}) AS b({", ".join(names)})
ORDER BY b.session_id
ON CONFLICT (session_id) DO UPDATE SET
    {updates},
    updated_at = now()
"""


_UPSERT_SESSIONS: Final = _upsert_sql()


async def upsert_sessions(conn: asyncpg.Connection, columns: Sequence[Sequence[Any]]) -> None:
    """Merge a batch's session rows (``session_columns.session_rows``) into ``session_metrics``."""
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
        # PostgreSQL text cannot hold NUL or lone surrogates; the bytes are kept as they are.
        [_storable_text(d.error_message) for d in letters],
    )


def _storable_text(text: str) -> str:
    return text.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


# Any constant shared by the replicas: one of them prunes at a time.
_PRUNE_LOCK: Final = 0x636C6B5F70726E


async def prune_event_ids(conn: asyncpg.Connection, retention_hours: float) -> int | None:
    """Forget ids applied more than ``retention_hours`` ago, by the database's clock.

    Returns the number of ids removed, or None when another replica is pruning.
    No event's own timestamp takes part: a device clock days ahead cannot make
    the pipeline forget ids it still needs.
    """
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _PRUNE_LOCK):
            return None
        status: str = await conn.execute(
            """
            DELETE FROM processed_events
            WHERE applied_at < now() - make_interval(secs => $1::float8 * 3600)
            """,
            retention_hours,
        )
    return int(status.rsplit(" ", 1)[-1])


# --- dead-letter relay -------------------------------------------------------


#: Rows Kafka refused this many times are left out of relaying (see 0005).
RELAY_MAX_REFUSALS = 2


async def lock_relay_if_owner(
    conn: asyncpg.Connection, group: str, topic: str, partition: int, epoch: int
) -> bool:
    """Take one partition's relay lock (transaction-scoped) if this replica owns it.

    The relay lock is an advisory lock of its own, not the offset row: batches
    of the partition never wait for the relay's Kafka I/O. Two relays of one
    partition (an old and a new owner) still never overlap. The epoch is read
    after the lock is held, so a relay that got the lock before a new claim
    finishes its round and the new owner's relay, which waits for the lock,
    sees the marks it made.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2), $3)", group, topic, partition
    )
    found = await conn.fetchval(
        """
        SELECT 1 FROM consumer_offsets
        WHERE group_id = $1 AND topic = $2 AND partition = $3 AND epoch = $4
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
               reason, error_class, error_message, relay_attempts
        FROM dead_letters
        WHERE source_topic = $1 AND source_partition = $2 AND relayed_at IS NULL
          AND relay_attempts < $4
        ORDER BY source_offset
        LIMIT $3
        """,
        topic,
        partition,
        limit,
        RELAY_MAX_REFUSALS,
    )
    return rows


async def record_relay_refusals(
    conn: asyncpg.Connection, topic: str, partition: int, refused: Mapping[int, str]
) -> None:
    """Count Kafka's refusal of these rows' copies (source offset → error)."""
    offsets = sorted(refused)
    await conn.execute(
        """
        UPDATE dead_letters AS d
        SET relay_attempts = d.relay_attempts + 1, relay_error = t.error
        FROM unnest($3::bigint[], $4::text[]) AS t(source_offset, error)
        WHERE d.source_topic = $1 AND d.source_partition = $2
          AND d.source_offset = t.source_offset AND d.relayed_at IS NULL
        """,
        topic,
        partition,
        offsets,
        [refused[o].replace("\x00", "\\0") for o in offsets],
    )


@dataclass(frozen=True, slots=True)
class PendingStats:
    """Outbox rows not yet in the dead-letter topic, of some source partitions."""

    rows: int
    refused: int  # left out of relaying after RELAY_MAX_REFUSALS refusals
    oldest_age_s: float  # 0 when nothing is pending


async def pending_stats(
    conn: asyncpg.Connection, topic: str, partitions: Sequence[int]
) -> PendingStats:
    row = await conn.fetchrow(
        """
        SELECT count(*) AS n,
               count(*) FILTER (WHERE relay_attempts >= $3) AS refused,
               coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8
                   AS age
        FROM dead_letters
        WHERE source_topic = $1 AND source_partition = ANY($2::int[]) AND relayed_at IS NULL
        """,
        topic,
        list(partitions),
        RELAY_MAX_REFUSALS,
    )
    assert row is not None
    return PendingStats(int(row["n"]), int(row["refused"]), max(0.0, float(row["age"])))


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
