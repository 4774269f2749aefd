"""Offset rows: claims with their fencing epochs, the batch's lock and check, its advance.

Rows are locked in partition order (see the package's docstring).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from clickstream_aggregator.records import PartitionRange


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
