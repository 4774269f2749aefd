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

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from clickstream_aggregator.log_bounds import (
    Case,
    LogBounds,
    OffsetOutOfRange,
    Suspicions,
    leader_bounds,
    place,
)
from clickstream_aggregator.records import PartitionRange, RawPartition, Record

__all__ = ["OffsetOutOfRange", "Positions"]

log = structlog.get_logger()


class Positions:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        log_end_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._doubts = Suspicions(log_end_wait_s, clock)
        #: Partition → the offset Kafka answered a fetch at with OFFSET_OUT_OF_RANGE.
        self._refused: dict[int, int] = {}
        self.fetch_from: dict[int, int] = {}
        self.stored: dict[int, int] = {}

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self._topic, partition)

    def claimed(self, partition: int, stored: int, log_start: int) -> None:
        """Start ``partition`` at its stored offset (refusing one before the log start)."""
        # ``log_start`` is the leader's answer (ListOffsets): no wait needed.
        if place(stored, LogBounds(log_start, stored)) is Case.BEFORE_START:
            raise OffsetOutOfRange(
                partition, stored, LogBounds(log_start, stored), Case.BEFORE_START
            )
        self.stored[partition] = stored
        self.fetch_from[partition] = stored
        self._consumer.seek(self._tp(partition), stored)

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.stored.pop(partition, None)
            self.fetch_from.pop(partition, None)
            self._doubts.clear(partition)
            self._refused.pop(partition, None)

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
            self._refused.pop(partition, None)  # fetched from: the leader has it
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
            self._refused.pop(partition, None)

    def refused(self, partition: int, offset: int) -> None:
        """Kafka answered a fetch at ``offset`` with OFFSET_OUT_OF_RANGE (checked like the rest)."""
        if partition in self.stored:
            self._refused[partition] = offset

    async def check_in_range(self, partitions: Collection[int]) -> None:
        """Raise :class:`OffsetOutOfRange` once the leader places a stored offset outside its log.

        A stored offset beyond the fetched high watermark, or a fetch Kafka
        answered with OFFSET_OUT_OF_RANGE (:meth:`refused`), is only a doubt at
        first: high watermarks trail after a leader election. After
        ``log_end_wait_s`` of doubt the leader is asked
        (:mod:`clickstream_aggregator.log_bounds`).
        """
        refused = self._refused
        assigned = self._consumer.assignment()
        for partition in partitions:
            tp = self._tp(partition)
            stored = self.stored.get(partition)
            if tp not in assigned or stored is None:
                continue  # revoked meanwhile (aiokafka asserts on it), or not claimed yet
            high = self._consumer.highwater(tp)
            if partition not in refused and (high is None or stored <= high):
                waited = self._doubts.clear(partition)
                if waited is not None:
                    log.info(
                        "log_end_caught_up",
                        partition=partition,
                        stored_offset=stored,
                        high_watermark=high,
                        waited_s=round(waited, 1),
                    )
                continue
            if self._doubts.waited(partition) is None:
                log.info(
                    "log_end_behind_stored_offset",
                    partition=partition,
                    stored_offset=stored,
                    high_watermark=high,
                    fetch_refused_at=refused.get(partition),
                    action=f"re-checking; the partition's leader decides after "
                    f"{self._doubts.wait_s:g}s",
                )
            if self._doubts.doubt(partition):
                await self._ask_leader(tp, stored, high, refused.get(partition))

    async def _ask_leader(
        self, tp: TopicPartition, stored: int, high: int | None, refused_at: int | None
    ) -> None:
        partition = tp.partition
        bounds = await leader_bounds(self._consumer, tp, high, budget_s=self._doubts.wait_s)
        self._doubts.restart(partition)  # no verdict, or in the log: doubt afresh
        if bounds is None:
            return  # Kafka did not answer: an outage, not a verdict
        case = place(stored, bounds)
        if case is not Case.IN_LOG:
            raise OffsetOutOfRange(partition, stored, bounds, case)
        log.info(
            "log_end_confirmed_by_leader",
            partition=partition,
            stored_offset=stored,
            log_start=bounds.start,
            log_end=bounds.end,
        )
        if refused_at is not None:
            self._refused.pop(partition, None)
            if place(refused_at, bounds) is not Case.IN_LOG:
                # Fetching ahead of what is stored, from a place the log does not have.
                self.fetch_from[partition] = stored
                self._consumer.seek(tp, stored)
