"""Kafka records → a validated batch: events to apply and messages to dead-letter.

Decoding is the contract's ``decode`` (one pydantic call per message). A message
that is not a valid event never stops the pipeline: it becomes a
:class:`DeadLetter` carrying the original bytes and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class Batch:
    topic: str
    # Valid events per partition, in offset order (a session lives on one partition).
    events: dict[int, list[ClickEvent]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    ranges: dict[int, PartitionRange] = field(default_factory=dict)
    # Same event_id seen twice inside this batch: only the first is kept.
    duplicates: int = 0

    @property
    def size(self) -> int:
        return sum(r.next - r.first for r in self.ranges.values())

    def all_events(self) -> list[ClickEvent]:
        return [event for partition in sorted(self.events) for event in self.events[partition]]

    @classmethod
    def combine(cls, parts: list[Batch]) -> Batch:
        """One batch from batches of distinct partitions of the same topic."""
        combined = cls(topic=parts[0].topic)
        seen: set[UUID] = set()
        for part in parts:
            for partition, events in part.events.items():
                # An event_id is unique across partitions too (the dedupe table is
                # global), so a copy on another partition is a duplicate as well.
                kept = [e for e in events if e.event_id not in seen]
                seen.update(e.event_id for e in kept)
                combined.duplicates += len(events) - len(kept)
                combined.events[partition] = kept
            combined.dead_letters.extend(part.dead_letters)
            combined.ranges.update(part.ranges)
            combined.duplicates += part.duplicates
        return combined

    def without_partitions(self, partitions: set[int]) -> Batch:
        """The batch minus the given partitions (used after they were fenced)."""
        return Batch(
            topic=self.topic,
            events={p: e for p, e in self.events.items() if p not in partitions},
            dead_letters=[d for d in self.dead_letters if d.partition not in partitions],
            ranges={p: r for p, r in self.ranges.items() if p not in partitions},
            duplicates=self.duplicates,
        )


ERROR_CLASS = f"{InvalidEvent.__module__}.{InvalidEvent.__qualname__}"


def validate(
    topic: str,
    records: Mapping[int, Sequence[Record]],
    *,
    max_bytes: int,
) -> Batch:
    """Decode every record, partition by partition in offset order."""
    batch = Batch(topic=topic)
    seen: set[UUID] = set()
    for partition in sorted(records):
        chunk = records[partition]
        if not chunk:
            continue
        batch.ranges[partition] = PartitionRange(partition, chunk[0].offset, chunk[-1].offset + 1)
        events = batch.events.setdefault(partition, [])
        for record in chunk:
            try:
                event = decode(record.value, max_bytes=max_bytes)
            except InvalidEvent as error:
                batch.dead_letters.append(
                    DeadLetter(
                        topic=topic,
                        partition=partition,
                        offset=record.offset,
                        key=record.key,
                        value=record.value,
                        timestamp_ms=record.timestamp,
                        reason=error.reason,
                        error_class=ERROR_CLASS,
                        error_message=str(error),
                    )
                )
                continue
            if event.event_id in seen:
                batch.duplicates += 1
                continue
            seen.add(event.event_id)
            events.append(event)
    return batch
