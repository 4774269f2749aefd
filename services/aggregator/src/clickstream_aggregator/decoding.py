"""Kafka records → valid events, their ids and dead letters, in offset order.

Decoding is the contract's decoder, fast path (``clickstream_schema.fast_decode``:
msgspec, the same accepted bytes, reasons and values as the model, proven by a
property test) and the model for what it cannot vouch for. A message without
``event_id`` gets the contract's derived id, and is counted. A message that is
not a valid event becomes a :class:`~clickstream_aggregator.records.DeadLetter`
carrying the original bytes and the reason. So does a message the caller names
in ``reject``, never decoded then: a valid event whose effect PostgreSQL refused
(found by :mod:`clickstream_aggregator.pinning`), or a message whose preparing
killed the worker process (found by :mod:`clickstream_aggregator.crash_pinning`).
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from uuid import UUID

from clickstream_aggregator.records import DeadLetter, MessageKey, RawPartition, Refusal
from clickstream_schema import InvalidEvent, derived_event_id
from clickstream_schema.fast_decode import NO_EVENT_ID, DecodedEvent, parse, with_event_id

ERROR_CLASS = f"{InvalidEvent.__module__}.{InvalidEvent.__qualname__}"


class Decoding:
    """Decodes a batch's messages lazily; dead letters and duplicates are counted on the way.

    :meth:`events` yields the valid events (partitions in the given order, each in
    offset order) without holding them all, so a large batch costs no more
    memory than its aggregates, and notes each one's id in :attr:`event_ids`.
    An event_id is unique across partitions too (the dedupe table is global): a
    copy on another partition is a duplicate as well.
    """

    def __init__(
        self,
        topic: str,
        partitions: Sequence[RawPartition],
        *,
        max_bytes: int,
        exclude: frozenset[UUID] = frozenset(),
        reject: Mapping[MessageKey, Refusal] | None = None,
    ) -> None:
        self._topic = topic
        self._partitions = partitions
        self._max_bytes = max_bytes
        #: Ids an earlier batch applied, as text: their events are skipped (and counted).
        self._exclude = {str(event_id) for event_id in exclude}
        #: Messages to dead-letter without applying them.
        self._reject = reject or {}
        self.dead_letters: list[DeadLetter] = []
        #: The ids of the events yielded, as canonical text (``dedupe_rows.packed`` rows them).
        self.event_ids: list[str] = []
        #: Same event_id twice in the batch (the first is kept).
        self.duplicates = 0
        #: Valid events whose message had no event_id (given one derived from its bytes).
        self.derived_ids = 0
        self.excluded = 0

    def events(self) -> Iterator[DecodedEvent]:
        seen: set[str] = set()
        exclude, max_bytes, reject = self._exclude, self._max_bytes, self._reject
        note = self.event_ids.append
        for raw in self._partitions:
            for index, value in enumerate(raw.values):
                if reject and (refusal := reject.get((raw.partition, raw.offsets[index]))):
                    self.dead_letters.append(_refused(self._topic, raw, index, refusal))
                    continue
                try:
                    event = parse(value, max_bytes=max_bytes)
                except InvalidEvent as error:
                    self.dead_letters.append(_dead_letter(self._topic, raw, index, error))
                    continue
                event_id = event.event_id
                if event_id is NO_EVENT_ID:
                    event_id = str(derived_event_id(value))  # type: ignore[arg-type]
                    event = with_event_id(event, event_id)
                    self.derived_ids += 1
                if event_id in seen:
                    self.duplicates += 1
                elif event_id in exclude:
                    self.excluded += 1
                else:
                    seen.add(event_id)
                    note(event_id)
                    yield event


def _refused(topic: str, raw: RawPartition, index: int, refusal: Refusal) -> DeadLetter:
    return _letter(topic, raw, index, refusal.reason, refusal.error_class, refusal.error_message)


def _dead_letter(topic: str, raw: RawPartition, index: int, error: InvalidEvent) -> DeadLetter:
    return _letter(topic, raw, index, error.reason, ERROR_CLASS, str(error))


def _letter(
    topic: str, raw: RawPartition, index: int, reason: str, error_class: str, message: str
) -> DeadLetter:
    """The dead letter of the message at ``index``: its original key, value and timestamp."""
    return DeadLetter(
        topic=topic,
        partition=raw.partition,
        offset=raw.offsets[index],
        key=raw.keys[index],
        value=raw.values[index],
        timestamp_ms=raw.timestamps[index],
        reason=reason,
        error_class=error_class,
        error_message=message,
    )
