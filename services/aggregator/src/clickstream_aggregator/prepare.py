"""A fetched batch → what its transaction writes: event ids, session rows, dead letters.

:func:`prepare` is pure and picklable end to end (plain lists in, plain lists
out), so it runs either in the service's process or in a worker process
(:mod:`clickstream_aggregator.workers`) while the previous batch's transaction
is in PostgreSQL. The batch (:mod:`clickstream_aggregator.batch`) keeps its raw
records, so it can be prepared again: without the partitions a fence check
rejected, or without events an earlier batch already applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from clickstream_aggregator import dedupe_rows
from clickstream_aggregator.aggregate import aggregate
from clickstream_aggregator.decoding import Decoding
from clickstream_aggregator.records import DeadLetter, MessageKey, RawPartition, Refusal
from clickstream_aggregator.session_columns import SessionRows, joined, session_rows


@dataclass(frozen=True, slots=True)
class Prepared:
    #: The dedupe rows of the events to apply (``dedupe_rows``), sorted by id:
    #: the dedupe index's lock order.
    event_rows: bytes
    #: ``session_columns.session_rows`` of the aggregated events.
    session_rows: SessionRows
    dead_letters: list[DeadLetter]
    #: Events to apply, after both kinds of duplicates are dropped.
    events: int
    #: Same event_id twice in this batch.
    duplicates: int
    #: Dropped because an earlier batch applied them (the ``exclude`` argument).
    excluded: int
    #: Latest event time in the batch.
    newest: datetime | None
    #: Valid messages without an event_id, given one derived from their bytes.
    derived_ids: int = 0

    def event_ids(self) -> list[UUID]:
        """The ids of the events to apply, sorted."""
        return dedupe_rows.event_ids(self.event_rows)


def prepare(
    topic: str,
    partitions: list[RawPartition],
    max_bytes: int,
    exclude: frozenset[UUID] = frozenset(),
    reject: Mapping[MessageKey, Refusal] | None = None,
) -> Prepared:
    """Decode, dedupe within the batch and aggregate, partitions in the given order.

    ``exclude``: ids of events applied before (skipped and counted);
    ``reject``: messages to dead-letter instead of applying.
    """
    decoding = Decoding(topic, partitions, max_bytes=max_bytes, exclude=exclude, reject=reject)
    sessions = aggregate(decoding.events())
    return Prepared(
        event_rows=dedupe_rows.packed(decoding.event_ids),
        session_rows=session_rows(sessions.values()),
        dead_letters=decoding.dead_letters,
        events=len(decoding.event_ids),
        duplicates=decoding.duplicates,
        excluded=decoding.excluded,
        newest=max((s.last_ts for s in sessions.values()), default=None),
        derived_ids=decoding.derived_ids,
    )


def combine(parts: Sequence[Prepared]) -> Prepared | None:
    """One result from results of disjoint partitions (given in partition order).

    ``None`` when the parts share a session or an event id (a producer that
    keyed a session two ways, or a copy of an event on another partition): those
    must be prepared together, which the caller then does.
    """
    if len(parts) == 1:
        return parts[0]
    rows = [r for part in parts for r in dedupe_rows.split(part.event_rows)]
    sessions = joined(p.session_rows for p in parts)
    if sessions is None or len({dedupe_rows.id_of(r) for r in rows}) != len(rows):
        return None
    rows.sort()
    newest = [p.newest for p in parts if p.newest is not None]
    return Prepared(
        event_rows=b"".join(rows),
        session_rows=sessions,
        dead_letters=[d for part in parts for d in part.dead_letters],
        events=sum(p.events for p in parts),
        duplicates=sum(p.duplicates for p in parts),
        excluded=sum(p.excluded for p in parts),
        newest=max(newest, default=None),
        derived_ids=sum(p.derived_ids for p in parts),
    )
