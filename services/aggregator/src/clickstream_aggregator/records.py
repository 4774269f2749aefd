"""The records of a batch: raw Kafka records per partition, their offset ranges, dead letters.

Records are kept as :class:`RawPartition` (parallel sequences; a worker gets
them in bulk: :mod:`clickstream_aggregator.handover`). A message's place is a
:data:`MessageKey`; a message that cannot be applied carries a
:class:`Refusal`, and one that is dead-lettered becomes a :class:`DeadLetter`
with its original bytes. Nothing here decodes or does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from clickstream_schema.codec import Reason


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


#: A message's place: (partition, offset).
MessageKey = tuple[int, int]


@dataclass(frozen=True, slots=True)
class RawPartition:
    """One partition's fetched records, in offset order, as parallel sequences.

    ``first``/``next`` are the offsets the fetch moved the consumer across,
    which can be wider than the records: transaction markers, aborted or
    compacted records leave gaps, and the range must cover them so that the
    next batch starts where this one ends.
    """

    partition: int
    offsets: Sequence[int]
    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    timestamps: Sequence[int]
    first: int = -1
    next: int = -1

    def __post_init__(self) -> None:
        if self.offsets:
            if self.first < 0 or self.first > self.offsets[0]:
                object.__setattr__(self, "first", self.offsets[0])
            if self.next <= self.offsets[-1]:
                object.__setattr__(self, "next", self.offsets[-1] + 1)

    @classmethod
    def of(
        cls, partition: int, records: Sequence[Record], first: int = -1, next: int = -1
    ) -> RawPartition:
        return cls(
            partition,
            [r.offset for r in records],
            [r.key for r in records],
            [r.value for r in records],
            [r.timestamp for r in records],
            first,
            next,
        )

    @property
    def span(self) -> PartitionRange:
        return PartitionRange(self.partition, self.first, self.next)

    def keys_in_order(self) -> list[MessageKey]:
        return [(self.partition, o) for o in self.offsets]

    def only(self, offsets: set[int]) -> RawPartition:
        """The records at ``offsets`` (to prepare part of a batch)."""
        kept = [i for i, o in enumerate(self.offsets) if o in offsets]
        return RawPartition(
            self.partition,
            [self.offsets[i] for i in kept],
            [self.keys[i] for i in kept],
            [self.values[i] for i in kept],
            [self.timestamps[i] for i in kept],
        )


#: Dead-letter reason of a message whose effect the database or a client refused.
UNSTORABLE: Final = "unstorable"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message cannot be applied (what PostgreSQL or a client said) and its reason."""

    error_class: str
    error_message: str
    #: The dead letter's reason: ``unstorable``, or ``crashed_decoder`` (``crash_pinning``).
    reason: Reason = UNSTORABLE

    @classmethod
    def of(cls, error: BaseException) -> Refusal:
        kind = type(error)
        return cls(f"{kind.__module__}.{kind.__qualname__}", str(error)[:2000] or repr(error))
