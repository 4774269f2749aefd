"""The dedupe window's end: forgetting event ids applied longer ago than the retention."""

from __future__ import annotations

from typing import Final

import asyncpg

# Any constant shared by the replicas: one of them prunes at a time.
_PRUNE_LOCK: Final = 0x636C6B5F70726E


async def prune_event_ids(conn: asyncpg.Connection, retention_hours: float) -> int | None:
    """Forget ids applied more than ``retention_hours`` ago, by the database's clock.

    Returns the number of ids removed, or None when another replica is pruning.
    No event's own timestamp takes part: a device clock days ahead cannot make
    the pipeline forget ids it still needs.
    """
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _PRUNE_LOCK):
            return None
        status: str = await conn.execute(
            """
            DELETE FROM processed_events
            WHERE applied_at < now() - make_interval(secs => $1::float8 * 3600)
            """,
            retention_hours,
        )
    return int(status.rsplit(" ", 1)[-1])
