"""What the demo shows while it runs: produced, committed and applied events.

Produced is the sum of the events topic's high watermarks. Tansu under-reports
``end_offsets()``, so a consumer with no group keeps fetching from the tail and
we read ``highwater()`` from its fetch responses. Committed and applied come
from the aggregator's own tables, which may not exist until it has migrated.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from clickstream_devstack.environment import KafkaTopics

_COUNTS = """
SELECT (SELECT COALESCE(SUM(total_events), 0) FROM session_metrics) AS applied,
       (SELECT COUNT(*) FROM session_metrics) AS sessions,
       (SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets
         WHERE group_id = $1 AND topic = $2) AS committed,
       (SELECT COUNT(*) FROM dead_letters) AS dead_letters
"""


@dataclass(frozen=True)
class Snapshot:
    produced: int = 0
    committed: int = 0
    applied: int = 0
    sessions: int = 0
    dead_letters: int = 0

    @property
    def caught_up(self) -> bool:
        return self.committed >= self.produced


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

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_end(*self._partitions)
        self._drain = asyncio.create_task(self._keep_fetching(), name="progress-fetch")
        self._connection = await asyncpg.connect(self._dsn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        if self._connection is not None:
            await self._connection.close()
        await self._consumer.stop()

    async def _keep_fetching(self) -> None:
        # The records are not needed, only the high watermarks that come with them.
        while True:
            await self._consumer.getmany(timeout_ms=500, max_records=50_000)

    def produced(self) -> int:
        return sum(self._consumer.highwater(tp) or 0 for tp in self._partitions)

    async def snapshot(self) -> Snapshot:
        produced = self.produced()
        assert self._connection is not None
        try:
            row = await self._connection.fetchrow(_COUNTS, self._topics.group, self._topics.events)
        except asyncpg.UndefinedTableError:
            return Snapshot(produced=produced)  # the aggregator has not migrated yet
        assert row is not None
        return Snapshot(
            produced=produced,
            committed=int(row["committed"]),
            applied=int(row["applied"]),
            sessions=int(row["sessions"]),
            dead_letters=int(row["dead_letters"]),
        )
