"""Migrations on a database a previous release wrote: its data kept, both releases served.

A rolling upgrade runs replicas of both releases against one database: after
0012 the previous one writes dedupe rows with ``event_time``, this one without
it; 0013 replaces the function behind a generated column and must compute the
values the old one stored.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstream_aggregator import dedupe_rows
from clickstream_aggregator import repository as repo
from clickstream_aggregator.migrate import available, migrate
from clickstream_aggregator.session_columns import COUNTED_TYPES
from clickstream_devstack.environment import Database
from support.database import fetch

_BEFORE = 12  # the first migration of this release

#: The counters' object as 0001 built it, before 0013 made it inlinable.
_TYPE_COUNTS_0001 = """jsonb_strip_nulls(jsonb_build_object(
    'page_view', nullif($1::int, 0), 'click', nullif($2::int, 0),
    'scroll', nullif($3::int, 0), 'hover', nullif($4::int, 0),
    'add_to_cart', nullif($5::int, 0), 'search', nullif($6::int, 0),
    'login', nullif($7::int, 0), 'purchase', nullif($8::int, 0),
    'share', nullif($9::int, 0)))"""


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

        assert (await migrate(conn))[0] == "0012_dedupe_rows_without_event_time"

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


async def test_0013_keeps_the_stored_type_counts_and_computes_new_ones_alike(
    database: Database,
) -> None:
    conn = await asyncpg.connect(database.dsn)
    try:
        await _migrate_before(conn, 13)
        counters = ", ".join(f"{kind}_count" for kind in COUNTED_TYPES)
        insert = f"""
            INSERT INTO session_metrics (session_id, user_id, total_events,
                first_event_timestamp, last_event_timestamp, total_revenue, unique_pages,
                products_viewed, search_queries, referrers, user_agent, ip_address,
                entry_page, exit_page, device_type, {counters})
            SELECT $1, 'u', 3, now(), now(), 0, '[]', '[]', '[]', '[]', 'agent',
                '192.0.2.1', '/', '/', 'desktop', {", ".join(f"${i}" for i in range(2, 11))}
        """
        await conn.execute(insert, "before", 2, 0, 1, 0, 0, 0, 0, 0, 7)
        stored = await conn.fetchval("SELECT event_type_counts::text FROM session_metrics")

        assert await migrate(conn) == ["0013_type_counts_inlined"]

        await conn.execute(insert, "after", 2, 0, 1, 0, 0, 0, 0, 0, 7)
        rows = dict(
            await conn.fetch("SELECT session_id, event_type_counts::text FROM session_metrics")
        )
        # The generated column is computed again by the new function on an update.
        await conn.execute("UPDATE session_metrics SET click_count = 0 WHERE session_id = 'before'")
        updated = await conn.fetchval(
            "SELECT event_type_counts::text FROM session_metrics WHERE session_id = 'before'"
        )
    finally:
        await conn.close()
    assert stored == rows["before"] == rows["after"]
    assert stored == '{"share": 7, "scroll": 1, "page_view": 2}'
    assert updated == stored


_COUNT = st.one_of(st.just(0), st.integers(0, 9), st.integers(-(2**31), 2**31 - 1))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(counts=st.lists(_COUNT, min_size=len(COUNTED_TYPES), max_size=len(COUNTED_TYPES)))
def test_the_inlinable_type_counts_equal_0001s(migrated_dsn: str, counts: list[int]) -> None:
    async def both() -> tuple[str, str]:
        conn = await asyncpg.connect(migrated_dsn)
        try:
            args = ", ".join(f"${i}::int" for i in range(1, 10))
            row = await conn.fetchrow(
                f"SELECT clickstream_type_counts({args})::text AS now, "
                f"({_TYPE_COUNTS_0001})::text AS before",
                *counts,
            )
        finally:
            await conn.close()
        return row["now"], row["before"]

    now, before = asyncio.run(both())
    assert now == before


async def test_the_type_counts_function_is_inlined(migrated_dsn: str) -> None:
    # Not inlined, it costs every session row's write a separate SQL function
    # call (see 0013): a STABLE call in its body would quietly bring that back.
    plan = await fetch(
        migrated_dsn,
        "EXPLAIN VERBOSE SELECT clickstream_type_counts(g, 0, 0, 0, 0, 0, 0, 0, g) "
        "FROM generate_series(1, 2) AS g",
    )
    text = "\n".join(r[0] for r in plan)
    assert "clickstream_type_counts" not in text
    assert "jsonb" in text
