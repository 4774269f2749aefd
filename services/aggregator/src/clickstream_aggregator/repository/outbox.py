"""The dead-letter outbox as the relay sees it: its locks, pending rows and marks.

The batch transaction adds rows (``batch_writes.insert_dead_letters``); the
relay reads and marks them here, one partition's round per transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from clickstream_schema.dead_letters import RELAY_MAX_REFUSALS


async def limit_round(conn: asyncpg.Connection, idle_timeout: str, lock_wait: str) -> None:
    """Bound one relay round's transaction: how long it may idle (on Kafka), and wait for locks."""
    await conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{idle_timeout}'")
    await conn.execute(f"SET LOCAL lock_timeout = '{lock_wait}'")


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
