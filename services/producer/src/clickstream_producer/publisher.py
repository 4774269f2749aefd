"""Kafka publishing in whole record batches, one open batch per partition.

``producer.send()`` per message tops out around 30k msg/s here (a coroutine, a
future and a size estimate per message). Building batches ourselves with
``create_batch()`` and handing each full one to ``send_batch()`` leaves a C-level
append per message. Partitions are chosen with aiokafka's ``DefaultPartitioner``
(Java's murmur2), so a session's key maps where any other client would put it.

Delivery policy: **stop**. aiokafka retries retriable errors itself; a batch that
still fails makes the next ``add`` raise :class:`DeliveryFailed`, ``run`` ends
with the error and nothing is silently dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

log = structlog.get_logger()

# murmur2 is pure Python (~5 µs); sessions repeat their key ~12 times, so remember it.
# Bounded so an endless run does not grow without limit.
_PARTITION_CACHE_LIMIT: Final = 200_000


class DeliveryFailed(RuntimeError):
    """A batch could not be delivered after the client's own retries."""


class Publisher:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partitions: list[int],
        *,
        on_acked: Callable[[int], None] = lambda _count: None,
        on_batch: Callable[[int], None] = lambda _count: None,
        on_failed: Callable[[int, BaseException], None] = lambda _count, _error: None,
    ) -> None:
        if not partitions:
            raise ValueError(f"topic {topic!r} has no partitions")
        self._producer = producer
        self._topic = topic
        self._partitions = sorted(partitions)
        self._partitioner = DefaultPartitioner()
        self._partition_of: dict[bytes, int] = {}
        self._builders: dict[int, Any] = {p: producer.create_batch() for p in self._partitions}
        self._on_acked = on_acked
        # Observers (metrics): records per batch handed over, records lost with their error.
        self._on_batch = on_batch
        self._on_failed = on_failed
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._failure: BaseException | None = None
        # Records handed to the client, and those it reported delivered: the
        # difference (plus the open batches) is what a stop would leave unconfirmed.
        self._submitted = 0
        self._acked = 0

    def partition_for(self, key: bytes) -> int:
        partition = self._partition_of.get(key)
        if partition is None:
            if len(self._partition_of) >= _PARTITION_CACHE_LIMIT:
                self._partition_of.clear()
            partition = self._partitioner(key, self._partitions, self._partitions)
            self._partition_of[key] = partition
        return partition

    def offer(self, key: bytes, value: bytes, timestamp_ms: int) -> int | None:
        """Append one message to its partition's open batch.

        Returns ``None`` when it was appended, or the partition whose batch is full:
        ``await submit(partition)`` and offer the message again. Keeping this
        synchronous saves a coroutine per message on the hot path.
        """
        partition = self._partition_of.get(key)
        if partition is None:
            partition = self.partition_for(key)
        if self._builders[partition].append(timestamp=timestamp_ms, key=key, value=value) is None:
            if self._builders[partition].record_count() == 0:
                raise ValueError(f"message of {len(value)} bytes does not fit in an empty batch")
            return partition
        return None

    async def add(self, key: bytes, value: bytes, timestamp_ms: int) -> None:
        """Queue one message; waits only when a full batch must be handed over."""
        while (full := self.offer(key, value, timestamp_ms)) is not None:
            await self.submit(full)

    async def submit(self, partition: int) -> None:
        """Hand the partition's batch to the client (waits while its previous one is queued)."""
        if self._failure is not None:
            raise DeliveryFailed(str(self._failure)) from self._failure
        builder = self._builders[partition]
        if builder.record_count() == 0:
            return
        self._builders[partition] = self._producer.create_batch()
        # Closed batches skip aiokafka's linger: we decide ourselves when a batch is done.
        builder.close()
        count = builder.record_count()
        # Counted before the await: a batch lost while being handed over is unconfirmed too.
        self._submitted += count
        try:
            future = await self._producer.send_batch(builder, self._topic, partition=partition)
        except Exception as error:
            # Not a policy (the error propagates and ends the run): the lost
            # records are only counted, like a failed delivery.
            self._on_failed(count, error)
            raise
        self._on_batch(count)
        self._in_flight.add(future)
        future.add_done_callback(lambda done: self._delivered(done, partition, count))

    def _delivered(self, future: asyncio.Future[Any], partition: int, count: int) -> None:
        self._in_flight.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self._acked += count
            self._on_acked(count)
            return
        if self._failure is None:
            self._failure = error
        self._on_failed(count, error)
        log.error("delivery_failed", partition=partition, records=count, error=repr(error))

    def unacknowledged(self) -> int:
        """Records offered whose delivery the broker has not confirmed (failed ones included)."""
        open_records: int = sum(builder.record_count() for builder in self._builders.values())
        return self._submitted + open_records - self._acked

    async def flush(self) -> None:
        """Hand over every partial batch (linger expired or shutting down)."""
        for partition in self._partitions:
            await self.submit(partition)

    async def drain(self) -> None:
        """Flush and wait until every handed-over batch is acknowledged (or failed)."""
        await self.flush()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))
        if self._failure is not None:
            raise DeliveryFailed(str(self._failure)) from self._failure
