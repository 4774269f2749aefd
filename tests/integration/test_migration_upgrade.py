"""Migration 0012 on a database the previous release wrote: its data kept, both releases served.

A rolling upgrade runs replicas of both releases against one database: the
previous one writes dedupe rows with ``event_time``, this one without it.
"""

from __future__ import annotations

from uuid import uuid4

import asyncpg

from clickstream_aggregator import dedupe_rows
from clickstream_aggregator import repository as repo
from clickstream_aggregator.migrate import available, migrate
from clickstream_devstack.environment import Database

_BEFORE = 12  # the first migration of this release


async def test_dedupe_rows_of_both_releases_live_side_by_side_after_0012(
    database: Database,
) -> None:
    conn = await asyncpg.connect(database.dsn)
    try:
        # The previous release's schema, and an id it applied.
        await _migrate_before(conn, _BEFORE)
        old = uuid4()
        await conn.execute(
            "INSERT INTO processed_events (event_id, event_time) VALUES ($1, now())", old
        )

        assert await migrate(conn) == ["0012_dedupe_rows_without_event_time"]

        # A replica of the previous release still writes its rows...
        older = uuid4()
        await conn.execute(
            "INSERT INTO processed_events (event_id, event_time) VALUES ($1, now())", older
        )
        # ...and this release's rows carry the id alone.
        new = uuid4()
        async with conn.transaction():
            await repo.record_event_ids(conn, dedupe_rows.packed([str(new)]))
        rows = {
            r["event_id"]: r["has_time"]
            for r in await conn.fetch(
                "SELECT event_id, event_time IS NOT NULL AS has_time FROM processed_events"
            )
        }
        indexes = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'processed_events'"
        )
    finally:
        await conn.close()
    assert rows == {old: True, older: True, new: False}
    assert "processed_events_time_brin" not in {r["indexname"] for r in indexes}


async def _migrate_before(conn: asyncpg.Connection, version: int) -> None:
    """Apply the migrations before ``version`` only, as the release that had them did."""
    await conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    for migration in available():
        if migration.version < version:
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
