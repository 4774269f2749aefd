"""Where batches are prepared: worker processes, or the service's own process.

Decoding and aggregating a batch is CPU work (pydantic validation is most of
it). In the service's process it would compete for the one thread that also
fetches from Kafka and drives the transaction in flight; in a worker process it
runs beside them. ``AGGREGATOR_DECODE_WORKERS`` sets how many (0: inline).

Workers are spawned (not forked from a process running an event loop), ignore
SIGINT and SIGTERM (the service decides when to stop, after finishing its
batch) and exit by themselves when the service's process is gone (say, after
SIGKILL), so none outlives it. A worker that dies makes the pool unusable: the
batch fails with ``BrokenProcessPool`` and the service stops, which loses
nothing (the batch was not committed).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType
from typing import Self
from uuid import UUID

import structlog

from clickstream_aggregator.prepare import Batch, Prepared, combine, prepare, tune_gc
from clickstream_aggregator.validate import RawPartition

log = structlog.get_logger()

#: How often a worker checks that the service's process is still its parent.
_PARENT_CHECK_S = 1.0


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(_PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(0)


def _init_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    tune_gc()


class Preparer:
    """Prepares batches of one topic, in worker processes when ``workers`` > 0."""

    def __init__(self, topic: str, *, max_bytes: int, workers: int) -> None:
        self._topic = topic
        self._max_bytes = max_bytes
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def __aenter__(self) -> Self:
        if self._workers > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
            # Start the workers now (imports take a second), not on the first batch.
            started = time.monotonic()
            empty = Batch(self._topic, {})
            await asyncio.gather(*(self.prepare(empty) for _ in range(self._workers)))
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
            # Nothing queued matters once the service stops: its batch is not committed.
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def prepare(self, batch: Batch, exclude: frozenset[UUID] = frozenset()) -> Prepared:
        """Prepare ``batch`` without the events whose ids are in ``exclude``.

        With several workers each partition is prepared on its own, in parallel,
        and the results combined; a batch whose partitions share sessions or
        event ids is prepared as a whole instead.
        """
        partitions = batch.partitions()
        if self._workers > 1 and len(partitions) > 1:
            parts = await asyncio.gather(*(self._run([p], exclude) for p in partitions))
            combined = combine(parts)
            if combined is not None:
                return combined
        return await self._run(partitions, exclude)

    async def _run(self, partitions: list[RawPartition], exclude: frozenset[UUID]) -> Prepared:
        args = (self._topic, partitions, self._max_bytes, exclude)
        if self._pool is None:
            return prepare(*args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, prepare, *args)
