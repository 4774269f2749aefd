"""The report's SQL: the only place it lives; every value is a parameter.

Sections read the analytics views of migration 0010 (so psql users and the
report agree by construction), the design document's two example queries
verbatim, and the dead-letter outbox of migration 0002.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

# The design document's analytics query, unchanged: its numbers are the ones
# people have been comparing against.
TOTALS: Final = """
SELECT
    COUNT(*) as total_sessions,
    AVG(total_events) as avg_events_per_session,
    SUM(total_revenue) as total_revenue,
    AVG(session_duration_minutes) as avg_session_duration
FROM session_metrics
"""

# The design document's "check session metrics" query; LIMIT is a parameter (10 by default).
LATEST_SESSIONS: Final = """
SELECT
    session_id,
    user_id,
    total_events,
    session_duration_minutes,
    total_revenue,
    event_type_counts
FROM session_metrics
ORDER BY last_event_timestamp DESC
LIMIT $1
"""

FUNNEL: Final = """
SELECT step_order, step, sessions, share_of_sessions, conversion_from_previous
FROM session_funnel
ORDER BY step_order
"""

TOP_PAGES: Final = """
SELECT page, views, entries, exits, bounce_rate, exit_rate
FROM top_pages
ORDER BY views DESC, entries DESC, page
LIMIT $1
"""

# The most recent hours, shown oldest first so the table reads like a timeline.
HOURLY_TRAFFIC: Final = """
SELECT hour, sessions, events, revenue, conversion_rate, bounce_rate
FROM (SELECT * FROM hourly_traffic ORDER BY hour DESC LIMIT $1) AS recent
ORDER BY hour
"""

DEVICE_SUMMARY: Final = """
SELECT device_type, sessions, avg_events, avg_duration_minutes, conversion_rate, revenue
FROM device_summary
ORDER BY sessions DESC, device_type
"""

DEAD_LETTERS: Final = """
SELECT
    reason,
    count(*) AS messages,
    count(*) FILTER (WHERE relayed_at IS NULL) AS not_relayed,
    max(created_at) AS latest
FROM dead_letters
GROUP BY reason
ORDER BY messages DESC, reason
"""

Row = dict[str, Any]


@dataclass(frozen=True)
class Limits:
    latest_sessions: int = 10
    top_pages: int = 10
    hours: int = 24


@dataclass(frozen=True)
class Report:
    """Everything the report shows; each section is a list of rows keyed by column."""

    totals: Row
    latest_sessions: list[Row]
    funnel: list[Row]
    top_pages: list[Row]
    hourly_traffic: list[Row]
    device_summary: list[Row]
    dead_letters: list[Row] = field(default_factory=list)

    def sections(self) -> dict[str, Any]:
        return {
            "totals": self.totals,
            "latest_sessions": self.latest_sessions,
            "funnel": self.funnel,
            "top_pages": self.top_pages,
            "hourly_traffic": self.hourly_traffic,
            "device_summary": self.device_summary,
            "dead_letters": self.dead_letters,
        }


async def prepare(conn: asyncpg.Connection) -> None:
    """Decode JSONB columns (event_type_counts) into Python objects, not strings."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def fetch_report(conn: asyncpg.Connection, limits: Limits) -> Report:
    # One snapshot: every section sees the same committed state of the tables.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        totals = await conn.fetchrow(TOTALS)
        return Report(
            totals=dict(totals) if totals is not None else {},
            latest_sessions=await _rows(conn, LATEST_SESSIONS, limits.latest_sessions),
            funnel=await _rows(conn, FUNNEL),
            top_pages=await _rows(conn, TOP_PAGES, limits.top_pages),
            hourly_traffic=await _rows(conn, HOURLY_TRAFFIC, limits.hours),
            device_summary=await _rows(conn, DEVICE_SUMMARY),
            dead_letters=await _rows(conn, DEAD_LETTERS),
        )


async def _rows(conn: asyncpg.Connection, query: str, *args: object) -> list[Row]:
    return [dict(record) for record in await conn.fetch(query, *args)]
