"""Read a topic back, every partition to its end: the one reader the tests share.

The topic is no longer written to. A partition is read when the consumer's
position reaches the fetch high-watermark, not ``end_offsets()``: Tansu
under-reports the latter, while the high-watermark is exact on both brokers (for
``read_committed`` on a topic without open transactions it is also the last
stable offset, so markers and aborted records are stepped over).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition

Isolation = Literal["read_committed", "read_uncommitted"]


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)
    timestamp_ms: int = 0
    timestamp_type: int = 0  # 0 CreateTime, 1 LogAppendTime (the leader's append)


async def read_topic(
    bootstrap: str, topic: str, partitions: int, *, isolation: Isolation = "read_committed"
) -> list[Record]:
    """Every record of ``topic`` a consumer of ``isolation`` sees, in (partition, offset)
    order. ``read_committed`` (the default) is how the dead-letter topic's contract asks
    its readers to read: copies of an aborted relay round stay in the log, invisible."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        isolation_level=isolation,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Record] = []
        done: set[TopicPartition] = set()
        while len(done) < len(tps):
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                out.extend(
                    Record(
                        tp.partition,
                        r.offset,
                        r.key,
                        r.value,
                        dict(r.headers or ()),
                        r.timestamp,
                        r.timestamp_type,
                    )
                    for r in records
                )
            for tp in tps:
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    done.add(tp)
        out.sort(key=lambda r: (r.partition, r.offset))
        return out
    finally:
        await consumer.stop()
