"""A fetched batch → what its transaction writes: event ids, session rows, dead letters.

:func:`prepare` is pure and picklable end to end (plain lists in, plain lists
out), so it runs either in the service's process or in a worker process
(:mod:`clickstream_aggregator.workers`) while the previous batch's transaction
is in PostgreSQL. :class:`Batch` keeps the raw records beside the result, so a
batch can be prepared again: without the partitions a fence check rejected, or
without events an earlier batch already applied.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from clickstream_aggregator.aggregate import aggregate
from clickstream_aggregator.session_columns import SessionRows, session_rows
from clickstream_aggregator.validate import (
    DeadLetter,
    Decoding,
    MessageKey,
    PartitionRange,
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


@dataclass(slots=True)
class Batch:
    """One fetch of one topic: its raw records per partition and, once prepared, the result."""

    topic: str
    raw: dict[int, RawPartition]
    prepared: Prepared | None = None
    #: Messages found unstorable (``pinning``) or killing the decode worker
    #: (``crash_pinning``): dead-lettered, never decoded, whenever the batch is prepared.
    rejects: dict[MessageKey, Refusal] = field(default_factory=dict)
    #: The claim epoch each partition was fetched under (``workers`` counts records per claim).
    claims: dict[int, int] = field(default_factory=dict)
    ranges: dict[int, PartitionRange] = field(init=False)

    def __post_init__(self) -> None:
        self.ranges = {p: r.span for p, r in self.raw.items()}

    @property
    def size(self) -> int:
        return sum(r.next - r.first for r in self.ranges.values())

    def partitions(self) -> list[RawPartition]:
        """Raw partitions in partition order: the order the batch is applied in."""
        return [self.raw[p] for p in sorted(self.raw)]

    def without_partitions(self, partitions: Iterable[int]) -> Batch:
        """The batch minus some partitions; it has to be prepared again."""
        dropped = set(partitions)
        return Batch(
            self.topic,
            {p: r for p, r in self.raw.items() if p not in dropped},
            rejects={k: r for k, r in self.rejects.items() if k[0] not in dropped},
            claims={p: e for p, e in self.claims.items() if p not in dropped},
        )

    def message_keys(self) -> list[MessageKey]:
        """Every message of the batch, in the order it is applied."""
        return [key for raw in self.partitions() for key in raw.keys_in_order()]

    def only(self, keys: Iterable[MessageKey]) -> list[RawPartition]:
        """The raw partitions holding just the messages ``keys``, in application order."""
        wanted: dict[int, set[int]] = {}
        for partition, offset in keys:
            wanted.setdefault(partition, set()).add(offset)
        return [self.raw[p].only(wanted[p]) for p in sorted(wanted)]


def tune_gc() -> None:
    """Collect young objects less often: a batch allocates ~10 objects per event.

    With the default threshold (700) the cyclic collector runs thousands of times
    per batch and keeps re-scanning the batch's live models; events form no
    cycles, so collecting every 50k allocations loses nothing and saves most of
    that time. Modules and settings loaded at start are frozen out of scans.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
