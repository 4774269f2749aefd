"""What the aggregator stored, read from one consistent PostgreSQL snapshot.

The whole verification runs inside one ``REPEATABLE READ`` transaction: the
committed offsets, the dead-letter rows and the session rows are all as of the
same instant, so a live aggregator committing meanwhile changes nothing we read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from clickstream_ops.verify.fold import COLUMNS, SETS, normal_ip

_JSON_COLUMNS = frozenset({"event_type_counts", "search_queries", *(name for name, _, _ in SETS)})


class NotAggregatedError(RuntimeError):
    """The database has no aggregator tables (the aggregator never ran against it)."""


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    reason: str
    relayed: bool
    #: Why, for the reasons this tool cannot see by decoding (unstorable, crashed_decoder).
    error: str = ""


async def begin_snapshot(conn: asyncpg.Connection) -> None:
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    # A long read must not be cut short by a server-wide statement timeout.
    await conn.execute("SET LOCAL statement_timeout = 0")


async def committed_offsets(conn: asyncpg.Connection, group: str, topic: str) -> dict[int, int]:
    """Partition → the next offset the group will apply (everything before is applied)."""
    try:
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM consumer_offsets "
            "WHERE group_id = $1 AND topic = $2",
            group,
            topic,
        )
    except asyncpg.UndefinedTableError:
        raise NotAggregatedError(
            "consumer_offsets does not exist: has the aggregator run against this database?"
        ) from None
    if not rows:
        others = await conn.fetch(
            "SELECT DISTINCT group_id FROM consumer_offsets WHERE topic = $1 ORDER BY 1", topic
        )
        if others:
            names = ", ".join(str(r["group_id"]) for r in others)
            raise NotAggregatedError(
                f"group {group!r} has committed nothing on {topic!r}, but {names} have: "
                "is KAFKA_GROUP_ID the aggregator's?"
            )
    return {int(r["partition"]): int(r["next_offset"] or 0) for r in rows}


async def dead_letter_rows(
    conn: asyncpg.Connection, topic: str
) -> dict[tuple[int, int], DeadLetterRow]:
    rows = await conn.fetch(
        "SELECT source_partition, source_offset, reason, relayed_at IS NOT NULL AS relayed, "
        "CASE WHEN reason IN ('unstorable', 'crashed_decoder') "
        "THEN left(error_message, 300) ELSE '' END AS error "
        "FROM dead_letters WHERE source_topic = $1",
        topic,
    )
    return {
        (int(r["source_partition"]), int(r["source_offset"])): DeadLetterRow(
            str(r["reason"]), bool(r["relayed"]), str(r["error"])
        )
        for r in rows
    }


async def session_rows(conn: asyncpg.Connection) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Every stored session as (session_id, the :data:`COLUMNS`), through a cursor."""
    query = f"SELECT session_id, {', '.join(COLUMNS)} FROM session_metrics"
    async for record in conn.cursor(query, prefetch=2000):
        row = dict(record)
        session_id = str(row.pop("session_id"))
        for column in _JSON_COLUMNS:
            row[column] = orjson.loads(row[column])
        row["ip_address"] = normal_ip(row["ip_address"])
        yield session_id, row
