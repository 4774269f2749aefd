"""The report's SQL: the only place it lives; every value is a parameter.

Sections read the analytics views of migrations 0010 and 0011 (so psql users
and the report agree by construction), the design document's totals query
verbatim, the event ids of the dedupe table (events per minute), and the
dead-letter outbox of migration 0002.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from clickstream_schema.dead_letters import RELAY_MAX_REFUSALS

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

# Sessions with an event in the last ACTIVE_MINUTES are active (migration 0011);
# the KPIs below are over finished sessions, active ones are counted apart.
ACTIVE_MINUTES: Final = 30

# The finished ones only: a session that started a second ago is not a result yet.
LATEST_FINISHED_SESSIONS: Final = """
SELECT
    session_id,
    user_id,
    total_events,
    session_duration_minutes,
    total_revenue,
    event_type_counts,
    last_event_timestamp
FROM session_status
WHERE NOT is_active
ORDER BY last_event_timestamp DESC
LIMIT $1
"""

SESSION_KPIS: Final = """
SELECT status, sessions, events, revenue, conversion_rate, bounce_rate, avg_events,
       avg_duration_minutes
FROM session_kpis
"""

FUNNEL: Final = """
SELECT step_order, step, finished_sessions, share_of_sessions, conversion_from_previous,
       active_sessions
FROM session_funnel
ORDER BY step_order
"""

TOP_PAGES: Final = """
SELECT page, views, entries, exits, bounce_rate, exit_rate, active_views
FROM top_pages
ORDER BY views DESC, entries DESC, active_views DESC, page
LIMIT $1
"""

# The most recent hours, shown oldest first so the table reads like a timeline.
HOURLY_TRAFFIC: Final = """
SELECT hour, sessions, events, finished_sessions, revenue, conversion_rate, bounce_rate,
       active_sessions, active_revenue
FROM (SELECT * FROM hourly_traffic ORDER BY hour DESC LIMIT $1) AS recent
ORDER BY hour
"""

# The last $1 whole minutes up to the current one, by the database clock.
_MINUTES: Final = """
SELECT generate_series(
    date_trunc('minute', now()) - ($1::int - 1) * interval '1 minute',
    date_trunc('minute', now()),
    interval '1 minute'
) AS minute
"""

# Events applied per minute (when the pipeline applied them, the database's
# clock) over the last $1 minutes, every minute present (0 when none).
# processed_events keeps every applied event id for the dedupe window (24 h at
# least), so these counts are exact; its applied_at has a BRIN index.
EVENTS_PER_MINUTE: Final = f"""
WITH minutes AS ({_MINUTES}),
counted AS (
    SELECT date_trunc('minute', applied_at) AS minute, count(*) AS events
    FROM processed_events
    WHERE applied_at >= (SELECT min(minute) FROM minutes)
    GROUP BY 1
)
SELECT minute, COALESCE(counted.events, 0) AS events
FROM minutes LEFT JOIN counted USING (minute)
ORDER BY minute
"""

# Freshness, production to row: for the sessions written in each of the last $1
# minutes (by updated_at, when the transaction that last wrote the row began),
# how long after the session's newest event the row was written:
# updated_at - last_event_timestamp. Meaningful for live traffic; for events
# timed in the past (a backfill) it is their age. Only each session's latest
# write is kept, so a minute shows the sessions last written in it.
FRESHNESS_PER_MINUTE: Final = f"""
WITH minutes AS ({_MINUTES}),
written AS (
    SELECT
        date_trunc('minute', updated_at) AS minute,
        count(*) AS sessions,
        percentile_cont(0.5) WITHIN GROUP (
            ORDER BY extract(epoch FROM updated_at - last_event_timestamp)::float8
        ) AS p50_seconds,
        max(extract(epoch FROM updated_at - last_event_timestamp))::float8 AS max_seconds
    FROM session_metrics
    WHERE updated_at >= (SELECT min(minute) FROM minutes)
    GROUP BY 1
)
SELECT minute, COALESCE(written.sessions, 0) AS sessions, p50_seconds, max_seconds
FROM minutes LEFT JOIN written USING (minute)
ORDER BY minute
"""

DEVICE_SUMMARY: Final = """
SELECT device_type, sessions, finished_sessions, avg_events, avg_duration_minutes,
       conversion_rate, revenue, active_sessions, active_revenue
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

# Rows waiting for the relay to copy them to the dead-letter topic. The relay
# sweeps every few seconds and after every batch that dead-letters, so a count
# that stays up with an old oldest row means it is behind or not running.
# Rows Kafka refused RELAY_MAX_REFUSALS times (relay_attempts, migration 0005)
# are left out of relaying until an operator resets them: counted apart.
DEAD_LETTERS_PENDING: Final = """
SELECT
    count(*) AS pending,
    count(*) FILTER (WHERE relay_attempts >= $1) AS refused,
    min(created_at) AS oldest,
    extract(epoch FROM now() - min(created_at))::float8 AS oldest_age_seconds
FROM dead_letters
WHERE relayed_at IS NULL
"""

# When the report's snapshot was taken, by the database clock the views use.
NOW: Final = "SELECT now()"

Row = dict[str, Any]

# Columns holding money (DECIMAL sums of total_revenue), in any section.
MONEY_COLUMNS: Final = frozenset({"total_revenue", "revenue", "active_revenue"})


@dataclass(frozen=True)
class Limits:
    latest_sessions: int = 10
    top_pages: int = 10
    hours: int = 24
    minutes: int = 60


@dataclass(frozen=True)
class Report:
    """Everything the report shows; each section is a row or a list of rows keyed by column."""

    generated_at: datetime
    totals: Row
    sessions: dict[str, Row]
    latest_finished_sessions: list[Row]
    funnel: list[Row]
    top_pages: list[Row]
    hourly_traffic: list[Row]
    events_per_minute: list[Row]
    freshness_per_minute: list[Row]
    device_summary: list[Row]
    dead_letters: list[Row]
    dead_letters_pending: Row

    def sections(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "active_after_minutes": ACTIVE_MINUTES,
            "totals": self.totals,
            "sessions": self.sessions,
            "latest_finished_sessions": self.latest_finished_sessions,
            "funnel": self.funnel,
            "top_pages": self.top_pages,
            "hourly_traffic": self.hourly_traffic,
            "events_per_minute": self.events_per_minute,
            "freshness_per_minute": self.freshness_per_minute,
            "device_summary": self.device_summary,
            "dead_letters": self.dead_letters,
            "dead_letters_pending": self.dead_letters_pending,
        }


async def prepare(conn: asyncpg.Connection) -> None:
    """Decode JSONB columns (event_type_counts) into Python objects, not strings."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def fetch_report(conn: asyncpg.Connection, limits: Limits) -> Report:
    # One snapshot: every section sees the same committed state of the tables,
    # and now() (the active/finished cut-off) is the same in every view.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        generated_at = await conn.fetchval(NOW)
        totals = await conn.fetchrow(TOTALS)
        pending = await conn.fetchrow(DEAD_LETTERS_PENDING, RELAY_MAX_REFUSALS)
        kpis = await _rows(conn, SESSION_KPIS)
        return Report(
            generated_at=generated_at,
            totals=dict(totals) if totals is not None else {},
            sessions={row.pop("status"): row for row in kpis},
            latest_finished_sessions=await _rows(
                conn, LATEST_FINISHED_SESSIONS, limits.latest_sessions
            ),
            funnel=await _rows(conn, FUNNEL),
            top_pages=await _rows(conn, TOP_PAGES, limits.top_pages),
            hourly_traffic=await _rows(conn, HOURLY_TRAFFIC, limits.hours),
            events_per_minute=await _rows(conn, EVENTS_PER_MINUTE, limits.minutes),
            freshness_per_minute=await _rows(conn, FRESHNESS_PER_MINUTE, limits.minutes),
            device_summary=await _rows(conn, DEVICE_SUMMARY),
            dead_letters=await _rows(conn, DEAD_LETTERS),
            dead_letters_pending=dict(pending) if pending is not None else {},
        )


async def _rows(conn: asyncpg.Connection, query: str, *args: object) -> list[Row]:
    return [dict(record) for record in await conn.fetch(query, *args)]
