"""Offsets per owned partition: where the next batch starts, and what PostgreSQL stores.

Two numbers per partition, both set when the partition is claimed:

* ``fetch_from``: where the next fetched batch starts. After each fetch it
  moves to the consumer's position, not to the last record + 1: transaction
  markers, aborted and compacted records leave gaps in offsets, and the
  consumer's position (as Kafka Streams commits it) steps over them. A fetch
  that returns no records leaves it alone, so the next batch's range also
  covers the gap it crossed.
* ``stored``: the next offset stored in PostgreSQL as far as this replica
  knows (from its claim and its own commits). A batch that does not start
  there is stale and dropped here, before any round trip; the consumer is
  moved only when it is not already heading to the right place, so a valid
  batch fetched meanwhile is kept.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from clickstream_aggregator.validate import PartitionRange, RawPartition, Record

log = structlog.get_logger()


class OffsetOutOfRange(RuntimeError):
    """The stored offset is outside the partition's log: records are gone or the topic is new."""

    def __init__(self, partition: int, stored: int, log_start: int | None, log_end: int | None):
        where = (
            f"before the log start {log_start}"
            if log_start is not None and stored < log_start
            else f"beyond the log end {log_end}"
        )
        super().__init__(
            f"partition {partition}: stored offset {stored} is {where}; "
            "records were deleted before they were applied, or the topic was recreated. "
            "Inspect consumer_offsets (clickstream-check) before resetting it by hand."
        )
        self.partition = partition
        self.stored = stored
        self.log_start = log_start
        self.log_end = log_end


class Positions:
    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self._consumer = consumer
        self._topic = topic
        self.fetch_from: dict[int, int] = {}
        self.stored: dict[int, int] = {}

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self._topic, partition)

    def claimed(self, partition: int, stored: int, log_start: int) -> None:
        """Start ``partition`` at its stored offset (refusing one before the log start)."""
        if stored < log_start:
            raise OffsetOutOfRange(partition, stored, log_start, None)
        self.stored[partition] = stored
        self.fetch_from[partition] = stored
        self._consumer.seek(self._tp(partition), stored)

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.stored.pop(partition, None)
            self.fetch_from.pop(partition, None)

    async def raw(self, fetched: Mapping[int, Sequence[Record]]) -> dict[int, RawPartition]:
        """The fetched records of claimed partitions, each with the offset range it covers.

        Call right after ``getmany``: the consumer's position is then the end of
        what it returned.
        """
        batches: dict[int, RawPartition] = {}
        for partition, records in fetched.items():
            start = self.fetch_from.get(partition)
            if start is None or not records:
                continue  # not claimed (yet, or any more)
            end = await self._consumer.position(self._tp(partition))
            # The position is past the records unless a seek moved it meanwhile.
            raw = RawPartition.of(partition, records, start, max(end, records[-1].offset + 1))
            batches[partition] = raw
            self.fetch_from[partition] = raw.next
        return batches

    def outdated(self, ranges: Mapping[int, PartitionRange]) -> set[int]:
        """Partitions of a batch that do not start at the stored offset (to drop unwritten).

        When such a batch is the newest fetched for its partition, the consumer
        is moved back to the stored offset (nothing fetched later can be valid);
        otherwise a later batch, already fetched, is judged on its own.
        """
        outdated = {
            p for p, span in ranges.items() if p in self.stored and span.first != self.stored[p]
        }
        for partition in outdated:
            if ranges[partition].next == self.fetch_from.get(partition):
                self.stale(partition, self.stored[partition])
        return outdated

    def committed(self, ranges: Iterable[PartitionRange]) -> None:
        for span in ranges:
            if span.partition in self.stored:
                self.stored[span.partition] = span.next

    def stale(self, partition: int, stored: int) -> None:
        """PostgreSQL stores ``stored``: continue from there."""
        if partition not in self.stored:
            return
        self.stored[partition] = stored
        if self.fetch_from.get(partition) != stored:
            self._consumer.seek(self._tp(partition), stored)
            self.fetch_from[partition] = stored

    def check_in_range(self, partitions: Collection[int]) -> None:
        """Raise :class:`OffsetOutOfRange` for a stored offset beyond the fetched high watermark.

        The high watermark comes with every fetch response (``end_offsets()`` is
        not used: some brokers under-report it). Kafka answers a fetch beyond it
        with OFFSET_OUT_OF_RANGE; brokers that answer with nothing are caught here.
        """
        assigned = self._consumer.assignment()
        for partition in partitions:
            tp = self._tp(partition)
            if tp not in assigned:
                continue  # revoked meanwhile (aiokafka asserts on it)
            stored = self.stored.get(partition)
            high = self._consumer.highwater(tp)
            if stored is not None and high is not None and stored > high:
                raise OffsetOutOfRange(partition, stored, None, high)
