"""What the demo shows while it runs, each number exactly what its label says.

* produced: messages on the events topic. The fetch high-watermark of a
  consumer that keeps reading the tail (Tansu under-reports ``end_offsets()``);
  it can trail by a fetch, so it is never shown below what is already committed
  (a committed offset proves the message is on the topic).
* committed: messages the aggregators have committed (sum of the stored next
  offsets), valid or not; lag = produced − committed.
* applied: events counted in ``session_metrics`` (``SUM(total_events)``), so
  duplicates and dead letters are not in it.
* freshness: now − the newest event time in ``session_metrics``: how old the
  freshest row is, i.e. production → row latency while traffic flows.
* events/s: produced and applied per second over the last few seconds.

The database counters come from one query (one snapshot); they may not exist
until the aggregator has migrated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Self

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from clickstream_devstack.environment import KafkaTopics

_COUNTS = """
SELECT (SELECT COALESCE(SUM(total_events), 0) FROM session_metrics) AS applied,
       (SELECT COUNT(*) FROM session_metrics) AS sessions,
       (SELECT max(last_event_timestamp) FROM session_metrics) AS newest,
       (SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets
         WHERE group_id = $1 AND topic = $2) AS committed,
       (SELECT COUNT(*) FROM dead_letters) AS dead_letters
"""
#: seconds over which events/s is averaged
RATE_WINDOW_S = 3.0


@dataclass(frozen=True)
class Snapshot:
    produced: int = 0
    committed: int = 0
    applied: int = 0
    sessions: int = 0
    dead_letters: int = 0
    #: now − newest event time applied, seconds; None before the first row
    freshness_s: float | None = None
    produced_per_s: float = 0.0
    applied_per_s: float = 0.0

    @property
    def lag(self) -> int:
        return self.produced - self.committed

    @property
    def caught_up(self) -> bool:
        return self.committed >= self.produced


class Rates:
    """Events per second from counters sampled over the last :data:`RATE_WINDOW_S`."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int, int]] = deque()

    def add(self, snap: Snapshot, now: float) -> Snapshot:
        self._samples.append((now, snap.produced, snap.applied))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        then, produced, applied = self._samples[0]
        if now - then <= 0:
            return snap
        return replace(
            snap,
            produced_per_s=(snap.produced - produced) / (now - then),
            applied_per_s=(snap.applied - applied) / (now - then),
        )


class PipelineProgress:
    """Reads the pipeline's counters; ``async with`` owns a consumer and a connection."""

    def __init__(self, bootstrap: str, dsn: str, topics: KafkaTopics) -> None:
        self._topics = topics
        self._dsn = dsn
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="clickstream-demo-progress",
        )
        self._partitions = [TopicPartition(topics.events, p) for p in range(topics.partitions)]
        self._connection: asyncpg.Connection | None = None
        self._drain: asyncio.Task[None] | None = None
        self._rates = Rates()
        self._last: Snapshot | None = None

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_end(*self._partitions)
        self._drain = asyncio.create_task(self._keep_fetching(), name="progress-fetch")
        self._connection = await asyncpg.connect(self._dsn)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        await self._consumer.stop()

    async def _keep_fetching(self) -> None:
        # The records are not needed, only the high watermarks that come with them.
        while True:
            await self._consumer.getmany(timeout_ms=500, max_records=50_000)

    def produced(self) -> int:
        return sum(self._consumer.highwater(tp) or 0 for tp in self._partitions)

    async def snapshot(self) -> Snapshot:
        """The counters now. PostgreSQL may be restarting (the chaos demo): then the
        connection is opened again and the last database counters are kept."""
        row = None
        try:
            if self._connection is None or self._connection.is_closed():
                self._connection = await asyncpg.connect(self._dsn, timeout=2)
            row = await self._connection.fetchrow(_COUNTS, self._topics.group, self._topics.events)
        except asyncpg.UndefinedTableError:
            pass  # the aggregator has not migrated yet
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            self._connection = None
            return self._last or Snapshot(produced=self.produced())
        produced = self.produced()
        if row is None:
            snap = Snapshot(produced=produced)
        else:
            newest: datetime | None = row["newest"]
            snap = Snapshot(
                produced=max(produced, int(row["committed"])),
                committed=int(row["committed"]),
                applied=int(row["applied"]),
                sessions=int(row["sessions"]),
                dead_letters=int(row["dead_letters"]),
                freshness_s=(
                    max(0.0, (datetime.now(UTC) - newest).total_seconds()) if newest else None
                ),
            )
        self._last = self._rates.add(snap, time.monotonic())
        return self._last
