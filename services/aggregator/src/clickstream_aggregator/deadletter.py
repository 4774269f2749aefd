"""Relays the dead-letter outbox (PostgreSQL) to the dead-letter topic, exactly once.

Rows are written by batch transactions; this relay copies them to the topic
with the original key, value and timestamp and Kafka Connect's
``__connect.errors.*`` headers, then marks them relayed. Per source partition:

* it relays only partitions it owns, holding that partition's offset row lock
  for the whole send-then-mark transaction, so a new owner (whose claim needs
  the same lock) never relays concurrently;
* a copy lands on dead-letter partition ``source_partition % dlq_partitions``;
* before each relay it reconciles: it reads the dead-letter partition after
  the last position it knows was marked and marks every copy already there (a
  crash or dropped connection between send and mark), by the source partition
  and offset headers, so nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from clickstream_aggregator import repository as repo
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.retry import Backoff, cause, is_transient
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_aggregator.source import Ownership

log = structlog.get_logger()

HEADER_TOPIC = "__connect.errors.topic"
HEADER_PARTITION = "__connect.errors.partition"
HEADER_OFFSET = "__connect.errors.offset"
HEADER_STAGE = "__connect.errors.stage"
HEADER_CLASS = "__connect.errors.class.name"
HEADER_EXCEPTION = "__connect.errors.exception.class.name"
HEADER_MESSAGE = "__connect.errors.exception.message"
HEADER_REASON = "clickstream.errors.reason"

_BATCH = 500
_SWEEP_S = 5.0
# A frozen relay must not hold a partition's lock forever: PostgreSQL ends the
# transaction, the new owner proceeds and reconciles with the topic's tail.
_LOCK_TIMEOUT = "15s"


def headers(topic: str, partition: int, row: asyncpg.Record) -> list[tuple[str, bytes]]:
    return [
        (HEADER_TOPIC, topic.encode()),
        (HEADER_PARTITION, str(partition).encode()),
        (HEADER_OFFSET, str(row["source_offset"]).encode()),
        (HEADER_STAGE, b"VALUE_CONVERTER" if row["reason"] != "schema" else b"TASK_PUT"),
        (HEADER_CLASS, b"clickstream_aggregator.validate"),
        (HEADER_EXCEPTION, row["error_class"].encode()),
        (HEADER_MESSAGE, row["error_message"].encode()),
        (HEADER_REASON, row["reason"].encode()),
    ]


class DeadLetterRelay:
    def __init__(
        self,
        settings: AggregatorSettings,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        tail_reader: AIOKafkaConsumer,
        ownership: Ownership,
        metrics: AggregatorMetrics,
        wake: asyncio.Event,
    ) -> None:
        self._s = settings
        self._pool = pool
        self._producer = producer
        self._reader = tail_reader
        self._ownership = ownership
        self._metrics = metrics
        self._wake = wake
        self._backoff = Backoff.from_settings(settings)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_SWEEP_S)
            self._wake.clear()
            await self.sweep(stop)

    async def sweep(self, stop: asyncio.Event) -> None:
        """Relay every pending row of every partition this replica owns."""
        for partition, epoch in sorted(self._ownership.epochs.items()):
            while not stop.is_set():
                try:
                    sent = await self._relay(partition, epoch)
                except Exception as error:
                    if not is_transient(error):
                        raise
                    self._metrics.retries.labels(cause=cause(error)).inc()
                    log.warning("dead_letter_relay_retry", partition=partition, error=repr(error))
                    if not await self._backoff.wait(stop):
                        return
                    continue
                self._backoff.reset()
                if sent < _BATCH:
                    break

    async def _relay(self, partition: int, epoch: int) -> int:
        topic = self._s.kafka_topic
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{_LOCK_TIMEOUT}'")
            if not await repo.lock_if_owner(conn, self._s.kafka_group_id, topic, partition, epoch):
                return 0
            if not await repo.pending_dead_letters(conn, topic, partition, 1):
                return 0
            dlq_partition = await self._dlq_partition(partition)
            # Every time, not once: a send whose mark was lost (a dropped
            # connection, a crash) must be found in the topic, not sent again.
            await self._reconcile(conn, partition, dlq_partition)
            rows = await repo.pending_dead_letters(conn, topic, partition, _BATCH)
            if not rows:
                return 0
            futures = [
                await self._producer.send(
                    self._s.kafka_dlq_topic,
                    key=row["message_key"],
                    value=row["message_value"],
                    partition=dlq_partition,
                    timestamp_ms=row["message_timestamp_ms"],
                    headers=headers(topic, partition, row),
                )
                for row in rows
            ]
            results = await asyncio.gather(*futures)
            await repo.mark_relayed(
                conn,
                topic,
                partition,
                [row["source_offset"] for row in rows],
                [r.partition for r in results],
                [r.offset for r in results],
            )
        self._metrics.dead_letters_relayed.inc(len(rows))
        log.info(
            "dead_lettered",
            partition=partition,
            rows=len(rows),
            dlq_partition=dlq_partition,
            first_offset=rows[0]["source_offset"],
            last_offset=rows[-1]["source_offset"],
        )
        return len(rows)

    async def _dlq_partition(self, partition: int) -> int:
        partitions = await self._producer.partitions_for(self._s.kafka_dlq_topic)
        if not partitions:
            raise RuntimeError(f"dead-letter topic {self._s.kafka_dlq_topic!r} does not exist")
        ordered: Sequence[int] = sorted(partitions)
        return ordered[partition % len(ordered)]

    async def _reconcile(
        self, conn: asyncpg.Connection, partition: int, dlq_partition: int
    ) -> None:
        topic = self._s.kafka_topic
        last = await repo.last_relayed_dlq_offset(conn, topic, partition)
        tp = TopicPartition(self._s.kafka_dlq_topic, dlq_partition)
        found = await read_tail(
            self._reader, tp, None if last is None else last + 1, topic, partition
        )
        if not found:
            return
        marked = await repo.mark_relayed(
            conn, topic, partition, list(found), [dlq_partition] * len(found), list(found.values())
        )
        log.info("dead_letter_reconciled", partition=partition, already_in_topic=marked)


async def read_tail(
    reader: AIOKafkaConsumer,
    tp: TopicPartition,
    start: int | None,
    source_topic: str,
    source_partition: int,
) -> dict[int, int]:
    """Source offset → dead-letter offset of the copies of one source partition after ``start``."""
    reader.assign([tp])
    if start is None:
        await reader.seek_to_beginning(tp)
    else:
        reader.seek(tp, start)
    # The fetch high-watermark is exact (Tansu under-reports end_offsets()).
    found: dict[int, int] = {}
    while True:
        batch = await reader.getmany(tp, timeout_ms=1000)
        for record in batch.get(tp, []):
            meta = dict(record.headers or ())
            if (
                meta.get(HEADER_TOPIC) == source_topic.encode()
                and meta.get(HEADER_PARTITION) == str(source_partition).encode()
            ):
                found[int(meta[HEADER_OFFSET])] = record.offset
        high = reader.highwater(tp)
        if high is not None and await reader.position(tp) >= high:
            return found
