"""The ceiling: a consumer that only fetches and parses JSON, with nothing to write.

Same client settings as the aggregator's consumer (fetch sizes, batch size), no
group, and ``orjson.loads`` on every value: no validation, no model. The ratio
aggregator / bare consumer is the share of this machine's read-and-parse speed
the exactly-once pipeline keeps, and the bare consumer's CPU per event is what
any Python consumer of the topic pays before doing anything with an event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from clickstream_aggregator.settings import AggregatorSettings
from clickstream_devstack.bench import BenchError
from clickstream_devstack.bench.measure import rate

# The aggregator's defaults, read from its settings model so the two cannot drift.
_FIELDS = AggregatorSettings.model_fields
_BATCH = int(_FIELDS["aggregator_batch_max_records"].default)
_FETCH_MAX = int(_FIELDS["kafka_fetch_max_bytes"].default)
_PARTITION_FETCH_MAX = int(_FIELDS["kafka_max_partition_fetch_bytes"].default)


@dataclass(frozen=True)
class BareRun:
    #: Messages read after the first batch (the ones the clock covers).
    events: int
    seconds: float
    invalid: int
    #: CPU seconds of the bench's event-loop thread (the consumer and the parsing) in the window.
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return rate(self.events, self.seconds)

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds * 1e6 / self.events if self.events else float("nan")


async def read_and_parse(
    client_options: dict[str, Any], topic: str, partitions: int, total: int, *, limit_s: float
) -> BareRun:
    consumer = AIOKafkaConsumer(
        **client_options,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=_FETCH_MAX,
        max_partition_fetch_bytes=_PARTITION_FETCH_MAX,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return await _drain(consumer, total, limit_s)
    finally:
        await consumer.stop()


async def _drain(consumer: AIOKafkaConsumer, total: int, limit_s: float) -> BareRun:
    deadline = time.monotonic() + limit_s
    seen = invalid = first_batch = 0
    clock_started: float | None = None
    cpu_started = 0.0
    while seen < total:
        if time.monotonic() > deadline:
            raise BenchError(f"bare consumer: {seen:,} of {total:,} messages after {limit_s:.0f} s")
        fetched = await consumer.getmany(timeout_ms=100, max_records=_BATCH)
        for records in fetched.values():
            for record in records:
                try:
                    orjson.loads(record.value)  # a None value (TypeError) is invalid too
                except (orjson.JSONDecodeError, TypeError):
                    invalid += 1
            seen += len(records)
        # Like the aggregator's figure: the clock starts once the first batch is done.
        if clock_started is None and seen:
            clock_started, first_batch = time.monotonic(), seen
            # The loop's thread only: the bench's other threads (the console) stay out.
            cpu_started = time.thread_time()
    assert clock_started is not None  # total > 0 and the loop ran
    return BareRun(
        events=seen - first_batch,
        seconds=time.monotonic() - clock_started,
        invalid=invalid,
        cpu_seconds=time.thread_time() - cpu_started,
    )
