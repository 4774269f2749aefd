"""Keeps the dedupe table to its window: ids applied within the retention are remembered.

The window is measured on the database's clock from the moment an id was
applied (``processed_events.applied_at``), never from an event's timestamp: a
device clock days ahead, or a replica far behind on old events, cannot make
the pruning forget ids another batch still needs. A copy of an event that
arrives more than the retention after the original was applied is counted
again; that is the documented limit. One replica prunes at a time (an
advisory lock); the others skip that round.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

from clickstream_aggregator import repository as repo
from clickstream_aggregator.policy import Verdict, verdict

log = structlog.get_logger()


class DedupeWindow:
    def __init__(self, pool: asyncpg.Pool, retention_hours: float, interval_s: float) -> None:
        self._pool = pool
        self._retention_hours = retention_hours
        self._interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
            if not stop.is_set():
                await self.prune()

    async def prune(self) -> int | None:
        """One round; returns the ids removed (None: skipped)."""
        try:
            async with self._pool.acquire() as conn:
                removed = await repo.prune_event_ids(conn, self._retention_hours)
        except Exception as error:
            if verdict(error) is not Verdict.RETRY:
                raise
            # The next round tries again; applying does not depend on pruning.
            log.warning("dedupe_prune_skipped", error=repr(error))
            return None
        if removed is not None:
            log.info("dedupe_pruned", retention_hours=self._retention_hours, rows=removed)
        return removed
