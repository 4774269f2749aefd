"""Reading the events topic between given offsets, and the dead-letter topic's copies.

Records come partition by partition in offset order (partitions interleave,
which does not matter: a session lives on one partition). Ends are taken from
the fetch high-watermark, not ``end_offsets()``, which some brokers (Tansu)
under-report.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

#: Headers the aggregator's relay puts on every dead-letter copy (Kafka Connect's names).
HEADER_TOPIC = "__connect.errors.topic"
HEADER_PARTITION = "__connect.errors.partition"
HEADER_OFFSET = "__connect.errors.offset"

_STALL_S = 60.0
_HIGHWATER_WAIT_S = 10.0


class TopicReadError(RuntimeError):
    """The broker stopped returning records that should be there."""


@dataclass(frozen=True, slots=True)
class Message:
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes | None
    headers: dict[str, bytes]


def consumer(options: Mapping[str, Any]) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **options,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
        # As the aggregator reads: the relay writes dead-letter copies in
        # transactions where the broker has them, and an aborted copy is none.
        isolation_level="read_committed",
    )


async def partitions(reader: AIOKafkaConsumer, topic: str) -> list[int]:
    """The topic's partitions, from metadata asked for here.

    A consumer's own metadata covers only the topics it tracks (Tansu happens to
    send every topic, Apache Kafka does not). The request asks for every topic:
    one naming this topic would create it on a broker that auto-creates topics.
    """
    cluster = await reader._client.fetch_all_metadata()
    found = cluster.partitions_for_topic(topic)
    if not found:
        raise TopicReadError(f"topic {topic!r} does not exist (or has no partitions)")
    return sorted(found)


async def log_starts(reader: AIOKafkaConsumer, topic: str, parts: list[int]) -> dict[int, int]:
    tps = [TopicPartition(topic, p) for p in parts]
    return {tp.partition: offset for tp, offset in (await reader.beginning_offsets(tps)).items()}


async def read_range(
    reader: AIOKafkaConsumer, topic: str, starts: Mapping[int, int], ends: Mapping[int, int]
) -> AsyncIterator[Message]:
    """Every record with ``starts[p] <= offset < ends[p]``, in offset order per partition."""
    todo = {TopicPartition(topic, p): ends[p] for p in starts if ends.get(p, 0) > starts[p]}
    if not todo:
        return
    reader.assign(list(todo))
    for tp in todo:
        reader.seek(tp, starts[tp.partition])
    last_progress = time.monotonic()
    while todo:
        batch = await reader.getmany(*todo, timeout_ms=1000, max_records=5000)
        for tp, records in batch.items():
            end = todo.get(tp)
            if end is None:
                continue
            for record in records:
                if record.offset >= end:
                    break
                yield Message(
                    tp.partition,
                    record.offset,
                    record.timestamp,
                    record.value,
                    dict(record.headers or ()),
                )
            last_progress = time.monotonic()
        for tp in list(todo):
            if await reader.position(tp) >= todo[tp]:
                del todo[tp]
                reader.pause(tp)
        if todo and time.monotonic() - last_progress > _STALL_S:
            missing = {tp.partition: (await reader.position(tp), e) for tp, e in todo.items()}
            raise TopicReadError(
                f"{topic}: no records for {_STALL_S:.0f} s; partition: (position, end) = {missing}"
            )


async def high_watermarks(reader: AIOKafkaConsumer, topic: str, parts: list[int]) -> dict[int, int]:
    """Each partition's high watermark, from one fetch per partition at its end."""
    tps = [TopicPartition(topic, p) for p in parts]
    reader.assign(tps)
    ends = await reader.end_offsets(tps)
    for tp in tps:
        # Tansu's end_offsets() may be short; a fetch from there reports the true end.
        reader.seek(tp, max(0, ends[tp] - 1))
    deadline = time.monotonic() + _HIGHWATER_WAIT_S
    while True:
        await reader.getmany(timeout_ms=500, max_records=1)
        known = {tp.partition: reader.highwater(tp) for tp in tps}
        if all(v is not None for v in known.values()):
            return {p: max(int(v or 0), ends[TopicPartition(topic, p)]) for p, v in known.items()}
        if time.monotonic() > deadline:
            return {tp.partition: ends[tp] for tp in tps}


async def dead_letter_copies(
    options: Mapping[str, Any], dlq_topic: str, source_topic: str
) -> tuple[Counter[tuple[int, int]], bool]:
    """How many copies of each source (partition, offset) the dead-letter topic holds,
    and whether the whole topic was read (no partition has lost records to retention)."""
    reader = consumer(options)
    await reader.start()
    try:
        parts = await partitions(reader, dlq_topic)
        starts = await log_starts(reader, dlq_topic, parts)
        ends = await high_watermarks(reader, dlq_topic, parts)
        copies: Counter[tuple[int, int]] = Counter()
        source = source_topic.encode()
        async for record in read_range(reader, dlq_topic, starts, ends):
            meta = record.headers
            if meta.get(HEADER_TOPIC) != source:
                continue
            copies[(int(meta[HEADER_PARTITION]), int(meta[HEADER_OFFSET]))] += 1
    finally:
        await reader.stop()
    return copies, all(start == 0 for start in starts.values())
