"""The batch records: a fetched batch and a batch ready to commit, never changed once made.

:class:`Batch` is one fetch of one topic: its raw records per partition, the
claim epoch each partition was fetched under, and the messages to dead-letter
unread (``rejects``). Its mappings are typed read-only and never written (plain
dicts, so that a batch pickles for a worker process). Whatever learns
something about a batch (a reject found, partitions dropped) makes a new one.
:class:`Ready` is a batch with what its transaction writes, prepared before
the transaction begins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from clickstream_aggregator.prepare import Prepared
from clickstream_aggregator.records import MessageKey, PartitionRange, RawPartition, Refusal


@dataclass(frozen=True, slots=True)
class Batch:
    """One fetch of one topic: its raw records per partition, in partition order when applied."""

    topic: str
    raw: Mapping[int, RawPartition]
    #: Messages found unstorable (``pinning``) or killing the decode worker
    #: (``crash_pinning``): dead-lettered, never decoded, whenever the batch is prepared.
    rejects: Mapping[MessageKey, Refusal] = field(default_factory=dict)
    #: The claim epoch each partition was fetched under (``workers`` counts records per claim).
    claims: Mapping[int, int] = field(default_factory=dict)
    ranges: Mapping[int, PartitionRange] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranges", {p: r.span for p, r in self.raw.items()})

    @property
    def size(self) -> int:
        return sum(r.next - r.first for r in self.ranges.values())

    def partitions(self) -> list[RawPartition]:
        """Raw partitions in partition order: the order the batch is applied in."""
        return [self.raw[p] for p in sorted(self.raw)]

    def with_rejects(self, found: Mapping[MessageKey, Refusal]) -> Batch:
        """The batch with more messages to dead-letter unread."""
        if not found:
            return self
        return Batch(self.topic, self.raw, {**self.rejects, **found}, self.claims)

    def without_partitions(self, partitions: Iterable[int]) -> Batch:
        """The batch minus some partitions; it has to be prepared again."""
        dropped = set(partitions)
        return Batch(
            self.topic,
            {p: r for p, r in self.raw.items() if p not in dropped},
            {k: r for k, r in self.rejects.items() if k[0] not in dropped},
            {p: e for p, e in self.claims.items() if p not in dropped},
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


@dataclass(frozen=True, slots=True)
class Ready:
    """A batch and what its transaction writes, prepared without the ids in ``exclude``."""

    batch: Batch
    prepared: Prepared
    #: Ids an earlier batch applied (found by a previous attempt's dedupe).
    exclude: frozenset[UUID] = frozenset()
