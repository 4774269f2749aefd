"""The migrated ``session_metrics`` table has exactly the columns the specification names.

A new event type (a counter column) or metric whose migration is missing fails
here, not in the first batch that meets it.
"""

from __future__ import annotations

import asyncpg

from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.session_columns import GENERATED_COLUMNS, TABLE_COLUMNS
from clickstream_devstack.environment import Database


async def test_the_table_has_the_specified_columns_and_generates_the_derived_ones(
    database: Database,
) -> None:
    conn = await asyncpg.connect(database.dsn)
    try:
        await migrate(conn)
        rows = await conn.fetch(
            "SELECT column_name, is_generated FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'session_metrics'"
        )
        in_view = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'session_status'"
        )
    finally:
        await conn.close()
    # session_status selects s.*, which PostgreSQL expands when the view is
    # created: a column added later is missing from it until a migration
    # creates the view again (as 0011 does).
    assert set(TABLE_COLUMNS) <= {r["column_name"] for r in in_view}
    assert {r["column_name"] for r in rows} == set(TABLE_COLUMNS)
    assert {r["column_name"] for r in rows if r["is_generated"] == "ALWAYS"} == set(
        GENERATED_COLUMNS
    )
