"""Reading the dead-letter partition's tail: which copies of a source partition are there.

Used by reconcile (a copy sent whose mark was lost must be found, not sent
again). One read is bounded: it ends when the position reaches the end of the
partition as the first fetch reported it (copies written later are not the
ones looked for); at ``deadline_s``, or once it has read ``max_records``,
it returns what it read so far with the
position reached, so that a long partition is scanned over several rounds and
nothing read is read again. It raises :class:`TailTimeout` when it could not
read anything in time (no leader, a broker down) and :class:`TailStopped` as
soon as ``stop`` is set.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from clickstream_aggregator.deadletters.copies import HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC


class TailTimeout(TimeoutError):
    """Nothing of the tail could be read in time: retried later with backoff."""


class TailStopped(Exception):
    """The service is stopping: the read was abandoned."""


@dataclass(frozen=True, slots=True)
class Tail:
    found: dict[int, int]  # source offset → dead-letter offset
    position: int  # the next dead-letter offset to read
    complete: bool  # the position reached the end


_POLL_MS = 200


async def read_tail(
    reader: AIOKafkaConsumer,
    tp: TopicPartition,
    start: int | None,
    source_topic: str,
    source_partition: int,
    *,
    stop: asyncio.Event,
    deadline_s: float,
    max_records: int | None = None,
) -> Tail:
    """The copies of one source partition in ``tp`` from ``start`` (None: the beginning).

    With a ``read_committed`` reader the end is the last stable offset, so
    copies of aborted transactions are never found.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline_s
    reader.assign([tp])
    if start is None:
        await asyncio.wait_for(reader.seek_to_beginning(tp), timeout=deadline_s)
    else:
        reader.seek(tp, start)
    first = await asyncio.wait_for(reader.position(tp), timeout=deadline_s)
    topic_bytes = source_topic.encode()
    partition_bytes = str(source_partition).encode()
    found: dict[int, int] = {}
    target: int | None = None
    position = first
    while True:
        if stop.is_set():
            raise TailStopped(str(tp))
        left = give_up - loop.time()
        if left <= 0:
            if position > first:
                return Tail(found, position, complete=False)
            raise TailTimeout(f"{tp.topic}[{tp.partition}]: nothing read in {deadline_s:g}s")
        wait_ms = int(min(_POLL_MS, left * 1000))
        # Never more than the budget left: a round reads max_records, not a fetch's worth.
        budget = None if max_records is None else max_records - (position - first)
        batch = await asyncio.wait_for(
            reader.getmany(tp, timeout_ms=wait_ms, max_records=budget), timeout=left + 1
        )
        for record in batch.get(tp, []):
            meta = dict(record.headers or ())
            if meta.get(HEADER_TOPIC) == topic_bytes and meta.get(HEADER_PARTITION) == (
                partition_bytes
            ):
                found[int(meta[HEADER_OFFSET])] = record.offset
        position = await asyncio.wait_for(reader.position(tp), timeout=max(left, 0.1))
        # The fetch high-watermark is exact (Tansu under-reports end_offsets()).
        high = reader.highwater(tp)
        if high is None:
            continue  # no answer from the partition's leader yet
        if target is None:
            target = high
        if position >= target:
            return Tail(found, position, complete=True)
        if max_records is not None and position - first >= max_records:
            return Tail(found, position, complete=False)
