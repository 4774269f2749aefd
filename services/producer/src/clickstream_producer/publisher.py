"""Kafka publishing in whole record batches, one open batch per partition.

``producer.send()`` per message tops out around 30k msg/s here (a coroutine, a
future and a size estimate per message). Building batches ourselves with
``create_batch()`` and handing each full one to ``send_batch()`` leaves a C-level
append per message. Partitions are chosen with aiokafka's ``DefaultPartitioner``
(Java's murmur2), so a session's key maps where any other client would put it.

A closed batch goes into its partition's *lane*: a queue that a task of its own
hands to ``send_batch()`` in order. aiokafka holds one batch per partition and
``send_batch()`` waits while the partition's previous one has not gone out,
which lasts as long as the partition has no leader (a broker lost, until the
controller elects another). Awaited in the generating loop, that wait held back
every partition; in a lane it holds back only its own, while the loop goes on
with the others. The batches lanes hold are bounded (``held_bytes_limit``, as
Java's ``buffer.memory``): past it, ``submit`` waits.

Delivery policy: **stop**. aiokafka retries retriable errors itself; a batch that
still fails makes the next ``add`` raise :class:`DeliveryFailed`, ``run`` ends
with the error and nothing is silently dropped.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

log = structlog.get_logger()

# murmur2 is pure Python (~5 µs); sessions repeat their key ~12 times, so remember it.
# Bounded so an endless run does not grow without limit.
_PARTITION_CACHE_LIMIT: Final = 200_000
#: Closed batches the lanes may hold before ``submit`` waits (Java's buffer.memory).
HELD_BYTES_LIMIT: Final = 32 * 1024 * 1024


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
        held_bytes_limit: int = HELD_BYTES_LIMIT,
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
        # Per partition: closed batches (builder, records, bytes) not yet handed
        # to the client, and the task handing them over.
        self._lanes: dict[int, deque[tuple[Any, int, int]]] = {p: deque() for p in partitions}
        self._wake = {p: asyncio.Event() for p in self._partitions}
        self._lane_tasks: dict[int, asyncio.Task[None]] = {}
        self._held_bytes = 0
        self._held_bytes_limit = held_bytes_limit
        self._room = asyncio.Event()
        self._room.set()
        self._handed_over = asyncio.Event()
        self._handed_over.set()

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
        """Close the partition's batch and queue it in its lane; waits only while the
        lanes hold ``held_bytes_limit`` or more."""
        if self._failure is not None:
            raise DeliveryFailed(str(self._failure)) from self._failure
        builder = self._builders[partition]
        if builder.record_count() == 0:
            return
        self._builders[partition] = self._producer.create_batch()
        # Closed batches skip aiokafka's linger: we decide ourselves when a batch is done.
        builder.close()
        count, size = builder.record_count(), builder.size()
        # Counted when queued: a batch lost while being handed over is unconfirmed too.
        self._submitted += count
        self._lanes[partition].append((builder, count, size))
        self._held_bytes += size
        self._handed_over.clear()
        self._wake[partition].set()
        if partition not in self._lane_tasks:
            self._lane_tasks[partition] = asyncio.create_task(
                self._lane(partition), name=f"lane-{partition}"
            )
        while self._held_bytes >= self._held_bytes_limit and self._failure is None:
            self._room.clear()
            await self._room.wait()

    async def _lane(self, partition: int) -> None:
        """Hand the partition's queued batches to the client, oldest first."""
        lane, wake = self._lanes[partition], self._wake[partition]
        while True:
            if not lane:
                wake.clear()
                await wake.wait()
                continue
            builder, count, size = lane[0]
            try:
                future = await self._producer.send_batch(builder, self._topic, partition=partition)
            except Exception as error:
                # The client is closed or gave up waiting for room (its request
                # timeout): the records are lost to this run, which ends (policy: stop).
                self._fail(count, error, partition)
            else:
                self._on_batch(count)
                self._in_flight.add(future)
                future.add_done_callback(
                    functools.partial(self._delivered, partition=partition, count=count)
                )
            lane.popleft()
            self._release(size)

    def _release(self, size: int) -> None:
        self._held_bytes -= size
        if self._held_bytes < self._held_bytes_limit:
            self._room.set()
        if not any(self._lanes.values()):
            self._handed_over.set()

    def _fail(self, count: int, error: BaseException, partition: int) -> None:
        if self._failure is None:
            self._failure = error
            self._room.set()  # a submit waiting for room raises instead
        self._on_failed(count, error)
        log.error("delivery_failed", partition=partition, records=count, error=repr(error))

    def _delivered(self, future: asyncio.Future[Any], *, partition: int, count: int) -> None:
        self._in_flight.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self._acked += count
            self._on_acked(count)
            return
        self._fail(count, error, partition)

    def unacknowledged(self) -> int:
        """Records offered whose delivery the broker has not confirmed (failed ones included)."""
        open_records: int = sum(builder.record_count() for builder in self._builders.values())
        return self._submitted + open_records - self._acked

    async def flush(self) -> None:
        """Hand over every partial batch (linger expired or shutting down)."""
        for partition in self._partitions:
            await self.submit(partition)

    async def drain(self) -> None:
        """Flush and wait until every batch is handed over and acknowledged (or failed)."""
        await self.flush()
        await self._handed_over.wait()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))
        if self._failure is not None:
            raise DeliveryFailed(str(self._failure)) from self._failure

    async def close(self) -> None:
        """End the lanes (what they still hold stays unacknowledged)."""
        tasks = list(self._lane_tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lane_tasks.clear()
