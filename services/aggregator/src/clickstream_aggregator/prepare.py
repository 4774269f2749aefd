"""A fetched batch → what its transaction writes: event ids, session rows, dead letters.

:func:`prepare` is pure and picklable end to end (plain lists in, plain lists
out), so it runs either in the service's process or in a worker process
(:mod:`clickstream_aggregator.workers`) while the previous batch's transaction
is in PostgreSQL. The batch (:mod:`clickstream_aggregator.batch`) keeps its raw
records, so it can be prepared again: without the partitions a fence check
rejected, or without events an earlier batch already applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from clickstream_aggregator.aggregate import aggregate
from clickstream_aggregator.session_columns import SessionRows, session_rows
from clickstream_aggregator.validate import (
    DeadLetter,
    Decoding,
    MessageKey,
    RawPartition,
    Refusal,
)
from clickstream_schema import ClickEvent


@dataclass(frozen=True, slots=True)
class Prepared:
    #: Ids (32 hex digits, sorted: the dedupe index's lock order) and event
    #: times (epoch ms, same order) of the events to apply.
    event_ids: list[str]
    event_times_ms: list[int]
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
    event_ids: list[str] = []
    event_times_ms: list[int] = []

    def noted(events: Iterator[ClickEvent]) -> Iterator[ClickEvent]:
        for event in events:
            # .hex: a third of str()'s cost, and asyncpg reads either form as a uuid.
            event_ids.append(event.event_id.hex)
            event_times_ms.append(int(event.timestamp.timestamp() * 1000))
            yield event

    sessions = aggregate(noted(decoding.events()))
    order = sorted(range(len(event_ids)), key=event_ids.__getitem__)
    return Prepared(
        event_ids=[event_ids[i] for i in order],
        event_times_ms=[event_times_ms[i] for i in order],
        session_rows=session_rows(sessions.values()),
        dead_letters=decoding.dead_letters,
        events=len(event_ids),
        duplicates=decoding.duplicates,
        excluded=decoding.excluded,
        newest=max((s.last_ts for s in sessions.values()), default=None),
    )


def combine(parts: Sequence[Prepared]) -> Prepared | None:
    """One result from results of disjoint partitions (given in partition order).

    ``None`` when the parts share a session or an event id (a producer that
    keyed a session two ways, or a copy of an event on another partition): those
    must be prepared together, which the caller then does.
    """
    if len(parts) == 1:
        return parts[0]
    event_ids = [i for part in parts for i in part.event_ids]
    session_ids = [s for part in parts for s in part.session_rows[0]]
    if len(set(event_ids)) != len(event_ids) or len(set(session_ids)) != len(session_ids):
        return None
    times = [t for part in parts for t in part.event_times_ms]
    by_id = sorted(range(len(event_ids)), key=event_ids.__getitem__)
    width = len(parts[0].session_rows)
    joined = [[value for part in parts for value in part.session_rows[c]] for c in range(width)]
    # Rows stay sorted by session_id: the lock order that keeps replicas deadlock-free.
    order = sorted(range(len(session_ids)), key=session_ids.__getitem__)
    newest = [p.newest for p in parts if p.newest is not None]
    return Prepared(
        event_ids=[event_ids[i] for i in by_id],
        event_times_ms=[times[i] for i in by_id],
        session_rows=[[column[i] for i in order] for column in joined],
        dead_letters=[d for part in parts for d in part.dead_letters],
        events=sum(p.events for p in parts),
        duplicates=sum(p.duplicates for p in parts),
        excluded=sum(p.excluded for p in parts),
        newest=max(newest, default=None),
    )
