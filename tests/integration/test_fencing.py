"""Fencing at the database level: a newer claim refuses the older owner's writes."""

from __future__ import annotations

import asyncpg

from clickstream_aggregator import repository as repo
from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.records import PartitionRange
from clickstream_aggregator.transaction import check_offsets
from clickstream_devstack.environment import Database


async def test_a_newer_claim_fences_the_previous_owner(database: Database) -> None:
    conn = await asyncpg.connect(database.dsn)
    try:
        await migrate(conn)
        first = await repo.claim_partitions(conn, "g", "t", {0: 0, 1: 0}, "zombie")
        second = await repo.claim_partitions(conn, "g", "t", {1: 0}, "new-owner")
        assert second[1].epoch == first[1].epoch + 1
        zombie = {p: c.epoch for p, c in first.items()}
        ranges = {p: PartitionRange(p, 0, 10) for p in (0, 1)}
        async with conn.transaction():
            stored = await repo.lock_offsets(conn, "g", "t", list(ranges))
        check = check_offsets(stored, zombie, ranges)
        assert check.fenced == {1}
        assert check.unclaimed == set()
        assert check.stale == {}
    finally:
        await conn.close()


async def test_a_lost_claim_and_a_stale_batch_are_told_apart(database: Database) -> None:
    conn = await asyncpg.connect(database.dsn)
    try:
        await migrate(conn)
        claims = await repo.claim_partitions(conn, "g", "t", {0: 0, 1: 0}, "me")
        epochs = {p: c.epoch + (1 if p == 0 else 0) for p, c in claims.items()}
        await repo.advance_offsets(conn, "g", "t", [PartitionRange(1, 0, 5)])
        ranges = {0: PartitionRange(0, 0, 3), 1: PartitionRange(1, 0, 3)}
        async with conn.transaction():
            stored = await repo.lock_offsets(conn, "g", "t", list(ranges))
        check = check_offsets(stored, epochs, ranges)
        # Partition 0: the stored claim is older than ours (the database lost it).
        assert check.unclaimed == {0}
        # Partition 1: already applied up to 5, the batch starting at 0 is stale.
        assert check.stale == {1: 5}
        assert check.fenced == set()
    finally:
        await conn.close()
