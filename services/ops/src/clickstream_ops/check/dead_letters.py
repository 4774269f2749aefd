"""Dead letters waiting in the outbox: a relay that is stuck must not go unnoticed.

The aggregator writes an invalid message to the ``dead_letters`` table in the
batch transaction, and its relay copies the row to ``KAFKA_DLQ_TOPIC``
(``relayed_at`` set). A row normally waits seconds. Rows still waiting after
:data:`STUCK_AFTER_S` mean no aggregator is relaying (none running, or it
cannot write to the DLQ topic), or Kafka refused the copy and the row waits for
an operator (``relay_attempts``, when the schema has it). That is a FAIL with
the count, the oldest age and what to do; younger rows are reported as OK.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from clickstream_ops.check.results import ServiceChecks
from clickstream_schema.dead_letters import RELAY_MAX_REFUSALS

#: A pending dead letter older than this is stuck (the relay retries within seconds).
STUCK_AFTER_S: Final = 300

_COLUMNS = """
SELECT
    to_regclass('dead_letters') IS NOT NULL AS has_table,
    EXISTS (SELECT 1 FROM information_schema.columns
            WHERE table_name = 'dead_letters' AND column_name = 'relay_attempts'
              AND table_schema = ANY (current_schemas(false))) AS has_attempts
"""
_PENDING = """
SELECT count(*) AS pending,
       count(*) FILTER (WHERE created_at < now() - make_interval(secs => $1)) AS stuck,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_s
FROM dead_letters WHERE relayed_at IS NULL
"""
_PARKED = """
SELECT count(*) AS parked,
       (array_agg(relay_error ORDER BY id DESC) FILTER (WHERE relay_error IS NOT NULL))[1]
           AS last_error
FROM dead_letters WHERE relayed_at IS NULL AND relay_attempts >= $1
"""


def age(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``: how people say a wait."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


async def check_dead_letters(
    checks: ServiceChecks, conn: asyncpg.Connection, wait_s: float
) -> None:
    """Report step ``dead_letters``."""
    shape = await conn.fetchrow(_COLUMNS, timeout=wait_s)
    assert shape is not None
    if not shape["has_table"]:
        checks.skip("dead_letters", "no dead_letters table in this schema")
        return
    row = await conn.fetchrow(_PENDING, float(STUCK_AFTER_S), timeout=wait_s)
    assert row is not None
    pending, stuck, oldest_s = row["pending"], row["stuck"], row["oldest_s"]
    if pending == 0:
        checks.ok("dead_letters", "none waiting to be copied to the dead-letter topic")
        return
    if stuck == 0:
        checks.ok(
            "dead_letters",
            f"{pending} waiting to be copied to the dead-letter topic, oldest {age(oldest_s)} "
            "(the relay copies them within seconds)",
        )
        return
    parked, last_error = 0, None
    if shape["has_attempts"]:
        refused = await conn.fetchrow(_PARKED, RELAY_MAX_REFUSALS, timeout=wait_s)
        assert refused is not None
        parked, last_error = refused["parked"], refused["last_error"]
    detail = (
        f"{stuck} of {pending} pending dead letter(s) not copied to the dead-letter topic "
        f"for more than {age(STUCK_AFTER_S)}, oldest {age(oldest_s)}"
    )
    fix = (
        "the aggregator's relay copies them: check that an aggregator runs and that it can "
        "write to KAFKA_DLQ_TOPIC (its logs: dead_letter_relay_*; /readyz)"
    )
    if parked:
        detail += f"; {parked} refused by Kafka {RELAY_MAX_REFUSALS} times"
        if last_error:
            detail += f" (last: {' '.join(str(last_error).split())[:200]})"
        fix += (
            f"; rows Kafka refused wait for you: fix the cause, then run UPDATE dead_letters "
            f"SET relay_attempts = 0 WHERE relayed_at IS NULL AND relay_attempts >= "
            f"{RELAY_MAX_REFUSALS}. The messages themselves are safe in the dead_letters table"
        )
    checks.fail("dead_letters", detail, fix)
