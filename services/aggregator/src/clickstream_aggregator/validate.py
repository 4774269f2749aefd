"""Kafka records → valid events and dead letters, partition by partition in offset order.

Decoding is the contract's ``decode`` (one pydantic call per message). A message
that is not a valid event never stops the pipeline: it becomes a
:class:`DeadLetter` carrying the original bytes and the reason.

Records travel as :class:`RawPartition` (plain lists) so that a batch can be
handed to a worker process cheaply; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from clickstream_schema import ClickEvent, InvalidEvent, decode


class Record(Protocol):
    """The parts of an aiokafka ``ConsumerRecord`` the aggregator uses."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    reason: str
    error_class: str
    error_message: str


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """The offsets a batch covers on one partition: ``[first, next)``."""

    partition: int
    first: int
    next: int


@dataclass(frozen=True, slots=True)
class RawPartition:
    """One partition's fetched records, in offset order, as parallel lists."""

    partition: int
    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    timestamps: list[int]

    @classmethod
    def of(cls, partition: int, records: Sequence[Record]) -> RawPartition:
        return cls(
            partition,
            [r.offset for r in records],
            [r.key for r in records],
            [r.value for r in records],
            [r.timestamp for r in records],
        )

    @property
    def span(self) -> PartitionRange:
        return PartitionRange(self.partition, self.offsets[0], self.offsets[-1] + 1)


ERROR_CLASS = f"{InvalidEvent.__module__}.{InvalidEvent.__qualname__}"


class Decoding:
    """Decodes a batch's messages lazily; dead letters and duplicates are counted on the way.

    :meth:`events` yields the valid events (partitions in the given order, each in
    offset order) without holding them all, so a large batch costs no more
    memory than its aggregates. An event_id is unique across partitions too (the
    dedupe table is global): a copy on another partition is a duplicate as well.
    """

    def __init__(
        self,
        topic: str,
        partitions: Sequence[RawPartition],
        *,
        max_bytes: int,
        exclude: frozenset[UUID] = frozenset(),
    ) -> None:
        self._topic = topic
        self._partitions = partitions
        self._max_bytes = max_bytes
        #: Ids an earlier batch applied: their events are skipped (and counted).
        self._exclude = exclude
        self.dead_letters: list[DeadLetter] = []
        #: Same event_id twice in the batch (the first is kept).
        self.duplicates = 0
        self.excluded = 0

    def events(self) -> Iterator[ClickEvent]:
        seen: set[UUID] = set()
        exclude, max_bytes = self._exclude, self._max_bytes
        for raw in self._partitions:
            for index, value in enumerate(raw.values):
                try:
                    event = decode(value, max_bytes=max_bytes)
                except InvalidEvent as error:
                    self.dead_letters.append(_dead_letter(self._topic, raw, index, error))
                    continue
                event_id = event.event_id
                if event_id in seen:
                    self.duplicates += 1
                elif event_id in exclude:
                    self.excluded += 1
                else:
                    seen.add(event_id)
                    yield event


def _dead_letter(topic: str, raw: RawPartition, index: int, error: InvalidEvent) -> DeadLetter:
    return DeadLetter(
        topic=topic,
        partition=raw.partition,
        offset=raw.offsets[index],
        key=raw.keys[index],
        value=raw.values[index],
        timestamp_ms=raw.timestamps[index],
        reason=error.reason,
        error_class=ERROR_CLASS,
        error_message=str(error),
    )
