"""The batch statement finds stored sessions by their key however small the table was.

PostgreSQL settles on a generic plan for a prepared statement after a few runs
and keeps it until the table is analysed again. One chosen while
``session_metrics`` held a few rows scans the whole table at every later batch.
The aggregator's connections run with ``repository.CONNECTION_SETTINGS``
(custom plans): the same statement, run the same way, must use the key once the
table has grown. A connection without them shows the hazard the setting exists for.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from clickstream_aggregator import repository as repo
from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.repository import batch_writes
from clickstream_aggregator.session_columns import SessionRows, session_rows
from clickstream_devstack.environment import Database
from support.sessions import a_session

_AT = datetime(2026, 1, 1, tzinfo=UTC)
_GROWN = 20_000  # stored sessions once the table has grown


def _rows(*session_ids: str) -> SessionRows:
    return session_rows(a_session(session_id, _AT, _AT) for session_id in session_ids)


async def _scans_after_growth(dsn: str, tag: str, settings: dict[str, str]) -> tuple[int, int]:
    """Sequential and index scans of ``session_metrics`` by one batch, once it has grown."""
    conn = await asyncpg.connect(dsn, server_settings=settings)
    try:
        # Enough runs on a small table for PostgreSQL to settle on a plan.
        for run in range(8):
            await batch_writes.upsert_sessions(conn, _rows(f"{tag}-early-{run}", f"{tag}-early"))
        await conn.execute(
            f"""
            INSERT INTO session_metrics (session_id, user_id, total_events,
                first_event_timestamp, last_event_timestamp, total_revenue, unique_pages,
                products_viewed, search_queries, referrers, user_agent, ip_address,
                entry_page, exit_page, device_type)
            SELECT '{tag}-grown-' || g, 'u', 1, now(), now(), 0, '[]', '[]', '[]', '[]',
                'agent', '192.0.2.1', '/', '/', 'desktop'
            FROM generate_series(1, {_GROWN}) AS g
            """
        )
        # The counters a backend has not reported yet (no report inside a transaction).
        scans = (
            "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables "
            "WHERE relname = 'session_metrics'"
        )
        async with conn.transaction():
            before = await conn.fetchrow(scans)
            await batch_writes.upsert_sessions(
                conn, _rows(f"{tag}-grown-7", f"{tag}-grown-70", f"{tag}-late")
            )
            after = await conn.fetchrow(scans)
    finally:
        await conn.close()
    assert before is not None
    assert after is not None
    return after["seq_scan"] - before["seq_scan"], after["idx_scan"] - before["idx_scan"]


async def test_a_batch_merges_by_the_key_after_the_table_grew(database: Database) -> None:
    conn = await asyncpg.connect(database.dsn)
    try:
        await migrate(conn)
        # No ANALYZE in between, as in the first minute of a new deployment.
        await conn.execute("ALTER TABLE session_metrics SET (autovacuum_enabled = false)")
    finally:
        await conn.close()

    settled = await _scans_after_growth(database.dsn, "settled", {})
    custom = await _scans_after_growth(database.dsn, "custom", repo.CONNECTION_SETTINGS)

    assert settled[0] == 1, "the hazard: a plan settled on a small table scans it all"
    assert custom == (0, 3)  # one probe of the key per session of the batch
