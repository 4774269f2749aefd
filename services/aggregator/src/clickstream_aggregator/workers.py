"""Where batches are prepared: worker processes, or the service's own process.

Decoding and aggregating a batch is CPU work (pydantic validation is most of
it). In the service's process it would compete for the one thread that also
fetches from Kafka and drives the transaction in flight; in a worker process it
runs beside them. ``AGGREGATOR_DECODE_WORKERS`` sets how many (0: inline);
batches under ``INLINE_BELOW`` records are prepared inline anyway. A
worker that dies fails the batch and stops the service, which loses nothing:
the batch was not committed (see ``clickstream_runtime.workers``).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType
from typing import Final, Self
from uuid import UUID

import structlog

from clickstream_aggregator.prepare import Batch, Prepared, combine, prepare, tune_gc
from clickstream_aggregator.validate import MessageKey, RawPartition, Refusal
from clickstream_runtime.workers import process_pool, shut_down

log = structlog.get_logger()

#: Batches with fewer records are prepared inline (a few milliseconds of work).
INLINE_BELOW: Final = 2000


class Preparer:
    """Prepares batches of one topic, in worker processes when ``workers`` > 0."""

    def __init__(
        self, topic: str, *, max_bytes: int, workers: int, inline_below: int = INLINE_BELOW
    ) -> None:
        self._topic = topic
        self._inline_below = inline_below
        self._max_bytes = max_bytes
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def __aenter__(self) -> Self:
        if self._workers > 0:
            self._pool = process_pool(self._workers, tune_gc)
            # Start the workers now (imports take a second), not on the first batch.
            started = time.monotonic()
            await asyncio.gather(*(self._run([], frozenset()) for _ in range(self._workers)))
            log.info(
                "decode_workers_started",
                workers=self._workers,
                ms=round((time.monotonic() - started) * 1000),
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await shut_down(pool)

    async def prepare(self, batch: Batch, exclude: frozenset[UUID] = frozenset()) -> Prepared:
        """Prepare ``batch`` without the events whose ids are in ``exclude``.

        With several workers each partition is prepared on its own, in parallel,
        and the results combined; a batch whose partitions share sessions or
        event ids is prepared as a whole instead.
        """
        partitions = batch.partitions()
        reject = batch.rejects
        if batch.size < self._inline_below:
            # A small batch means the consumer is caught up and latency is what
            # counts: the hand-over to a worker would take longer than the work.
            return prepare(self._topic, partitions, self._max_bytes, exclude, reject)
        if self._workers > 1 and len(partitions) > 1:
            parts = await asyncio.gather(*(self._run([p], exclude, reject) for p in partitions))
            combined = combine(parts)
            if combined is not None:
                return combined
        return await self._run(partitions, exclude, reject)

    async def _run(
        self,
        partitions: list[RawPartition],
        exclude: frozenset[UUID],
        reject: dict[MessageKey, Refusal] | None = None,
    ) -> Prepared:
        args = (self._topic, partitions, self._max_bytes, exclude, reject)
        if self._pool is None:
            return prepare(*args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, prepare, *args)
