"""Are the latest messages being counted? A topic of dead letters must not pass as healthy.

The aggregator's stored offsets (``consumer_offsets``) say where each partition
of the topic was applied to; its ``dead_letters`` rows say which of those
messages were refused and why. Over the last :data:`WINDOW` offsets of each
partition, a check that FAILs when more than half were dead-lettered, naming
the top reason, its first error and what to do; a smaller share is reported as
OK with its reasons. Offsets stand for messages: transaction markers take an
offset too, so with a transactional producer the share reads slightly low.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from clickstream_ops.check.results import ServiceChecks

STEP: Final = "counting"
#: Offsets per partition looked at: the most recent messages the aggregator applied.
WINDOW: Final = 1000

_SHAPE = """
SELECT to_regclass('dead_letters') IS NOT NULL AND to_regclass('consumer_offsets') IS NOT NULL
"""
# The window per partition: [next_offset - WINDOW, next_offset) of the group's stored offsets.
_RECENT = """
WITH ends AS (
    SELECT partition, next_offset, greatest(next_offset - $3, 0) AS first
    FROM consumer_offsets
    WHERE group_id = $1 AND topic = $2 AND next_offset IS NOT NULL
)
SELECT
    (SELECT coalesce(sum(next_offset - first), 0)::bigint FROM ends) AS messages,
    d.reason, count(d.*) AS n,
    (array_agg(d.error_message ORDER BY d.source_partition, d.source_offset))[1] AS first_error
FROM ends e
JOIN dead_letters d ON d.source_topic = $2 AND d.source_partition = e.partition
    AND d.source_offset >= e.first AND d.source_offset < e.next_offset
GROUP BY d.reason
ORDER BY n DESC, d.reason
"""
_MESSAGES = """
SELECT coalesce(sum(next_offset - greatest(next_offset - $3, 0)), 0)::bigint
FROM consumer_offsets WHERE group_id = $1 AND topic = $2 AND next_offset IS NOT NULL
"""

#: What to do about the top reason.
FIXES: Final = {
    "schema": (
        "the producer's events break the event contract (the error names the fields; the "
        "contract table is in the docs): make the producer send them. Every refused message "
        "is in the dead_letters table and on the dead-letter topic"
    ),
    "not_json": "the producer does not write one JSON object per message: check its serializer",
    "not_utf8": "the producer does not write UTF-8 JSON: check its serializer",
    "not_object": "the producer writes JSON that is not an object: check its serializer",
    "empty": "something writes empty values (tombstones) to the events topic",
    "oversize": "messages exceed AGGREGATOR_MAX_MESSAGE_BYTES: find the producer writing them",
    "unstorable": "PostgreSQL refused the events' effect: see the error",
    "crashed_decoder": "the messages crashed the aggregator's decoder: see decode_worker_* logs",
}


async def check_recent_dead_letters(
    checks: ServiceChecks, conn: asyncpg.Connection, wait_s: float, group: str, topic: str
) -> None:
    """Report step ``counting`` for ``group``'s progress on ``topic``."""
    if not await conn.fetchval(_SHAPE, timeout=wait_s):
        checks.skip(STEP, "no dead_letters or consumer_offsets table in this schema")
        return
    rows = await conn.fetch(_RECENT, group, topic, WINDOW, timeout=wait_s)
    messages = (
        rows[0]["messages"]
        if rows
        else await conn.fetchval(_MESSAGES, group, topic, WINDOW, timeout=wait_s)
    )
    if not messages:
        checks.skip(STEP, f"group {group} has applied nothing of {topic} yet")
        return
    dead = sum(r["n"] for r in rows)
    scope = f"of the last {messages:,} message(s) of {topic} the aggregator read"
    if not dead:
        checks.ok(STEP, f"none dead-lettered {scope}")
        return
    reasons = ", ".join(f"{r['reason']} {r['n']:,}" for r in rows)
    top = rows[0]
    if dead * 2 <= messages:
        checks.ok(STEP, f"{dead:,} dead-lettered {scope} ({reasons})")
        return
    first = " ".join(str(top["first_error"]).split())[:300]
    checks.fail(
        STEP,
        f"{dead:,} {scope} were dead-lettered, not counted ({reasons}); "
        f"first {top['reason']} error: {first}",
        FIXES.get(top["reason"], "see the error and the dead_letters table"),
    )
