"""Reconcile: mark the outbox rows whose copies are already in the dead-letter topic.

A copy sent whose mark was lost (a crash or a dropped connection between send
and mark) must be found, not sent again. Each round reads the dead-letter
partition after the last copy known to be marked, bounded by
``_RECONCILE_S`` and ``_RECONCILE_RECORDS`` (the round holds a transaction, and
how much it reads should not depend on how fast the broker answers); a long
partition is read over several rounds, each going on from where the last one
stopped (remembered per claim, and only once the round
that marked what it found has committed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from clickstream_aggregator import repository as repo
from clickstream_aggregator.deadletters.tail import read_tail

_RECONCILE_S = 10.0
_RECONCILE_RECORDS = 50_000


@dataclass(frozen=True, slots=True)
class Reconciled:
    marked: int  # rows found in the topic and marked now
    position: int  # where the read ended
    complete: bool  # False: read on before sending anything


class Reconciler:
    def __init__(self, reader: AIOKafkaConsumer, source_topic: str, dlq_topic: str) -> None:
        self._reader = reader
        self._source = source_topic
        self._dlq = dlq_topic
        # Progress under a claim: partition → (epoch, next dead-letter offset to read).
        self._scanned: dict[int, tuple[int, int]] = {}

    async def run(
        self,
        conn: asyncpg.Connection,
        partition: int,
        epoch: int,
        dlq_partition: int,
        stop: asyncio.Event,
    ) -> Reconciled:
        last = await repo.last_relayed_dlq_offset(conn, self._source, partition)
        start = None if last is None else last + 1
        scanned = self._scanned.get(partition)
        if scanned is not None and scanned[0] == epoch:
            start = scanned[1] if start is None else max(start, scanned[1])
        tp = TopicPartition(self._dlq, dlq_partition)
        tail = await read_tail(
            self._reader,
            tp,
            start,
            self._source,
            partition,
            stop=stop,
            deadline_s=_RECONCILE_S,
            max_records=_RECONCILE_RECORDS,
        )
        marked = 0
        if tail.found:
            marked = await repo.mark_relayed(
                conn,
                self._source,
                partition,
                list(tail.found),
                [dlq_partition] * len(tail.found),
                list(tail.found.values()),
            )
        return Reconciled(marked, tail.position, tail.complete)

    def remember(self, partition: int, epoch: int, position: int) -> None:
        """Call once the transaction that marked what was found has committed."""
        self._scanned[partition] = (epoch, position)

    def keep_only(self, partitions: Collection[int]) -> None:
        for partition in [p for p in self._scanned if p not in partitions]:
            del self._scanned[partition]
