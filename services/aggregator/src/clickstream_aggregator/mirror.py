"""Copies committed offsets to the Kafka consumer group, off the critical path.

PostgreSQL holds the truth; the copy in Kafka only lets the usual lag tools
(``kafka-consumer-groups``, Aiven's console) see the group's progress. The
batch loop hands over the latest committed offsets and never waits: this task
commits the newest ones about once a second, each attempt bounded in time, so
an unavailable group coordinator (aiokafka retries a commit until it answers)
delays only the copy, never the applying.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from clickstream_aggregator.records import PartitionRange

log = structlog.get_logger()

_INTERVAL_S = 1.0
_ATTEMPT_TIMEOUT_S = 5.0


class OffsetMirror:
    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self._consumer = consumer
        self._topic = topic
        self._pending: dict[int, int] = {}
        self._wake = asyncio.Event()

    def note(self, ranges: Iterable[PartitionRange]) -> None:
        """Offsets just committed to PostgreSQL (newest wins)."""
        for span in ranges:
            self._pending[span.partition] = span.next
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_INTERVAL_S)
            self._wake.clear()
            await self.flush()
            # At most one commit per interval, whatever the batch rate.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_INTERVAL_S)

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        assigned = self._consumer.assignment()
        offsets = {
            tp: OffsetAndMetadata(offset, "")
            for partition, offset in pending.items()
            if (tp := TopicPartition(self._topic, partition)) in assigned
        }
        if not offsets:
            return
        try:
            await asyncio.wait_for(self._consumer.commit(offsets), timeout=_ATTEMPT_TIMEOUT_S)
        except (KafkaError, TimeoutError) as error:
            # Not retried: the next commit carries newer offsets anyway.
            log.debug("kafka_offset_mirror_skipped", error=repr(error))
