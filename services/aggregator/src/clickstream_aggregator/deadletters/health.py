"""How far behind the dead-letter relay is: gauges and a readiness condition.

Every ``_INTERVAL_S`` the rows of the owned partitions still waiting for the
dead-letter topic are counted (``clickstream_aggregator_dead_letters_pending``,
of them refused by Kafka ``..._dead_letters_refused``) and the oldest one's
age is exported (``..._dead_letters_oldest_pending_seconds``). Readiness
condition ``dead_letters`` is false while that age exceeds
``AGGREGATOR_DLQ_READY_MAX_AGE_S``: a relay that cannot write (broker down,
a row Kafka refused twice, a crash loop) shows in ``/readyz`` instead of
silently leaving rows behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import asyncpg
import structlog

from clickstream_aggregator import repository as repo
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.policy import Verdict, verdict
from clickstream_runtime.health import Readiness

log = structlog.get_logger()

CONDITION = "dead_letters"
_INTERVAL_S = 5.0
_QUERY_TIMEOUT_S = 5.0


class Owned(Protocol):
    """What the relay needs of ``ownership.Ownership``: owned partition → claim epoch."""

    epochs: dict[int, int]


class PendingWatch:
    def __init__(
        self,
        topic: str,
        pool: asyncpg.Pool,
        ownership: Owned,
        metrics: AggregatorMetrics,
        readiness: Readiness,
        *,
        max_age_s: float,
        interval_s: float = _INTERVAL_S,
    ) -> None:
        self._topic = topic
        self._pool = pool
        self._ownership = ownership
        self._metrics = metrics
        self._readiness = readiness
        self._max_age_s = max_age_s
        self._interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)

    async def check(self) -> repo.PendingStats | None:
        """One measurement; None if PostgreSQL did not answer (its own condition shows that)."""
        try:
            async with asyncio.timeout(_QUERY_TIMEOUT_S):
                async with self._pool.acquire() as conn:
                    stats = await repo.pending_stats(
                        conn, self._topic, sorted(self._ownership.epochs)
                    )
        except Exception as error:
            if verdict(error) is not Verdict.RETRY:
                raise
            log.debug("dead_letter_watch_skipped", error=repr(error))
            return None
        self._metrics.dead_letters_pending.set(stats.rows)
        self._metrics.dead_letters_refused.set(stats.refused)
        self._metrics.dead_letters_oldest_pending_seconds.set(stats.oldest_age_s)
        if stats.oldest_age_s > self._max_age_s:
            self._readiness.set(
                CONDITION,
                False,
                f"{stats.rows} dead letters pending, the oldest for {stats.oldest_age_s:.0f}s "
                f"(> {self._max_age_s:g}s); {stats.refused} refused by Kafka "
                "(dead_letters.relay_error)",
            )
        else:
            self._readiness.set(CONDITION, True)
        return stats
