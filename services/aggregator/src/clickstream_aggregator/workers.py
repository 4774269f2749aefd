"""Where batches are prepared: worker processes, or the service's own process.

Decoding and aggregating a batch is CPU work. In the service's process it
would compete for the one thread that also fetches from Kafka and drives the
transaction in flight; in a worker process it runs beside them.
``AGGREGATOR_DECODE_WORKERS`` sets how many (0: inline). A batch's records go
to a worker in bulk (:mod:`clickstream_aggregator.handover`), and its session
rows come back as one JSON document (``session_columns.SessionRows``).

A worker that dies costs its batch nothing (nothing of it was committed): the
pool is replaced, and the batch is prepared again in a pool of its own (one
worker, so that no other batch's death is taken for its own). A second death
there pins it on its messages (:mod:`clickstream_aggregator.crash_pinning`).
A batch that went to a worker is never decoded in the service's process before
it was decoded whole in a worker: a value that makes preparing fail is also
searched for in a worker (:func:`~clickstream_aggregator.pinning.find_unpreparable`).

Batches under ``INLINE_BELOW`` records are prepared inline, where a message
that kills the interpreter kills the service, except while a partition is
*fresh*: its first ``batch_max_records + inline_below`` records after each
claim go to a worker whatever the batch's size. A message that killed a
replica inline lies within that many records of the offset the replica
committed last (the batch it died on, and at most one batch before it still
in its transaction, of at most ``batch_max_records``), so whoever claims the
partition next prepares it in a worker and pins it: it stops one replica
once, not in a loop. That holds when ``batch_max_records`` is the consumer's
``AGGREGATOR_BATCH_MAX_RECORDS``.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from uuid import UUID

import structlog
from prometheus_client import Counter

from clickstream_aggregator.batch import Batch, Ready
from clickstream_aggregator.crash_pinning import DecodeWorkersFailed, crashing
from clickstream_aggregator.gc_tuning import tune_gc
from clickstream_aggregator.handover import Dock, Parcel, restored
from clickstream_aggregator.pinning import find_unpreparable, log_unstorable
from clickstream_aggregator.policy import Verdict, verdict
from clickstream_aggregator.prepare import Prepared, combine, prepare
from clickstream_aggregator.records import MessageKey, RawPartition, Refusal
from clickstream_runtime.workers import WorkerDied, call, process_pool, shut_down

log = structlog.get_logger()

T = TypeVar("T")

#: Batches with fewer records are prepared inline (a few milliseconds of work).
INLINE_BELOW: Final = 2000
#: The settings' default ``AGGREGATOR_BATCH_MAX_RECORDS``.
BATCH_MAX_RECORDS: Final = 10_000


@dataclass(slots=True)
class _Claim:
    """One partition's claim as this process sees it: records still to prepare in a worker."""

    epoch: int | None
    fresh: int
    #: The offset after the last record counted (a batch prepared again counts once).
    counted_to: int = -1


class Preparer:
    """Prepares batches of one topic, in worker processes when ``workers`` > 0."""

    def __init__(
        self,
        topic: str,
        *,
        max_bytes: int,
        workers: int,
        inline_below: int = INLINE_BELOW,
        batch_max_records: int = BATCH_MAX_RECORDS,
        deaths: Counter | None = None,
    ) -> None:
        self._topic = topic
        self._deaths = deaths
        self._inline_below = inline_below
        self._fresh_records = batch_max_records + inline_below
        self._max_bytes = max_bytes
        self._workers = workers
        self._pool: _Workers | None = None
        #: The one-worker pool a batch is prepared again in after a death, while it is.
        self._isolated: _Workers | None = None
        self._claims: dict[int, _Claim] = {}

    async def start(self) -> None:
        """Start the worker processes (none when ``workers`` is 0)."""
        if self._workers > 0:
            started = time.monotonic()
            self._pool = _Workers(self._topic, self._max_bytes, self._workers, self._deaths)
            await self._pool.start()
            log.info(
                "decode_workers_started",
                workers=self._workers,
                ms=round((time.monotonic() - started) * 1000),
            )

    async def close(self) -> None:
        """Stop the workers; a caller that bounds this and cuts it short kills them.

        A batch being prepared again after a death is abandoned by the stop
        that closes this: the worker of its pool is killed, not waited for.
        """
        if self._isolated is not None:
            self._isolated.kill()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close()
            except asyncio.CancelledError:
                pool.kill()
                raise

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def prepare(self, batch: Batch, exclude: frozenset[UUID] = frozenset()) -> Ready:
        """Prepare ``batch`` without the events whose ids are in ``exclude``.

        With several workers each partition is prepared on its own, in parallel,
        and the results combined; a batch whose partitions share sessions or
        event ids is prepared as a whole instead. Messages found to kill the
        worker, or whose value preparing cannot hold (the policy's ``PIN``), are
        added to the batch's ``rejects`` (in the returned batch).
        """
        fresh = self._count_fresh(batch)
        if self._pool is None or (batch.size < self._inline_below and not fresh):
            # A small batch means the consumer is caught up and latency is what
            # counts: the hand-over to a worker would take longer than the work.
            return self._inline(batch, exclude)
        try:
            return await self._prepared_in(self._pool, batch, exclude)
        except WorkerDied as died:
            self._log_death(batch, died, "prepared_again")
        isolated = self._isolated = _Workers(self._topic, self._max_bytes, 1, self._deaths)
        try:
            await isolated.start()
            return await self._recover(isolated, batch, exclude)
        finally:
            try:
                await isolated.close()  # a close() meanwhile kills its worker
            finally:
                self._isolated = None

    def _inline(self, batch: Batch, exclude: frozenset[UUID]) -> Ready:
        """``batch`` prepared in this process, a value preparing cannot hold pinned."""
        try:
            return Ready(batch, self._prepare(batch, exclude), exclude)
        except Exception as error:
            if verdict(error) is not Verdict.PIN:
                raise
        batch = batch.with_rejects(_found(batch, find_unpreparable(batch, self._max_bytes)))
        return Ready(batch, self._prepare(batch, exclude), exclude)

    def _prepare(self, batch: Batch, exclude: frozenset[UUID]) -> Prepared:
        return prepare(self._topic, batch.partitions(), self._max_bytes, exclude, batch.rejects)

    async def _recover(self, pool: _Workers, batch: Batch, exclude: frozenset[UUID]) -> Ready:
        """Prepare ``batch`` after a death, in ``pool``: one worker of its own."""
        try:
            return await self._prepared_in(pool, batch, exclude)
        except WorkerDied as died:
            self._log_death(batch, died, "narrowing")
            second = died

        async def attempt(
            partitions: list[RawPartition], reject: Mapping[MessageKey, Refusal]
        ) -> Prepared:
            return await pool.run(partitions, frozenset(), reject)

        batch = batch.with_rejects(await crashing(batch, attempt, second))
        try:
            return await self._prepared_in(pool, batch, exclude)
        except WorkerDied as died:
            self._log_death(batch, died, "stopping")
            raise _failed(
                "the decode worker dies on the batch as a whole while no message of it alone "
                f"kills it ({died}): a batch too large for the worker's memory?"
            ) from None

    def _count_fresh(self, batch: Batch) -> bool:
        """Whether some partition of ``batch`` is within its first records since it was claimed."""
        if self._pool is None:
            return False
        fresh = False
        for partition, raw in batch.raw.items():
            epoch = batch.claims.get(partition)
            claim = self._claims.get(partition)
            if claim is None or claim.epoch != epoch:
                claim = self._claims[partition] = _Claim(epoch, self._fresh_records)
            fresh |= claim.fresh > 0
            new = len(raw.offsets) - bisect.bisect_left(raw.offsets, claim.counted_to)
            claim.fresh = max(0, claim.fresh - new)
            claim.counted_to = max(claim.counted_to, raw.next)
        return fresh

    async def _prepared_in(self, pool: _Workers, batch: Batch, exclude: frozenset[UUID]) -> Ready:
        """``batch`` prepared in ``pool``'s workers, pinning included: never inline.

        A message whose value makes preparing fail (the policy's ``PIN``) is
        searched for in a worker too: the messages after it in the batch were
        not decoded yet, and one of them may kill the interpreter.
        """
        try:
            return Ready(batch, await self._in_workers(pool, batch, exclude), exclude)
        except WorkerDied:
            raise
        except Exception as error:
            if verdict(error) is not Verdict.PIN:
                raise
        found = await pool.call(find_unpreparable, batch, self._max_bytes)
        batch = batch.with_rejects(_found(batch, found))
        return Ready(batch, await self._in_workers(pool, batch, exclude), exclude)

    async def _in_workers(self, pool: _Workers, batch: Batch, exclude: frozenset[UUID]) -> Prepared:
        partitions, reject = batch.partitions(), batch.rejects
        if pool.size > 1 and len(partitions) > 1:
            parts = await asyncio.gather(
                *(pool.run([p], exclude, reject) for p in partitions), return_exceptions=True
            )
            failed = [p for p in parts if isinstance(p, BaseException)]
            # A death first: every call the broken pool held failed with it.
            for error in sorted(failed, key=lambda e: not isinstance(e, WorkerDied)):
                raise error
            combined = combine([p for p in parts if isinstance(p, Prepared)])
            if combined is not None:
                return combined
        return await pool.run(partitions, exclude, reject)

    def _log_death(self, batch: Batch, died: WorkerDied, action: str) -> None:
        log.warning(
            "decode_worker_died",
            partitions=sorted(batch.ranges),
            offsets=[batch.ranges[p].first for p in sorted(batch.ranges)],
            messages=batch.size,
            exit_codes=died.exit_codes,
            action=action,
        )


class _Workers:
    """A started pool of worker processes that prepare batches; replaced after a death."""

    def __init__(self, topic: str, max_bytes: int, size: int, deaths: Counter | None) -> None:
        self._topic = topic
        self._max_bytes = max_bytes
        self.size = size
        self._deaths = deaths
        self._pool: ProcessPoolExecutor | None = None
        self._closing: ProcessPoolExecutor | None = None
        self._replacing = asyncio.Lock()
        self._dock = Dock(keep=size + 1)

    async def run(
        self,
        partitions: list[RawPartition],
        exclude: frozenset[UUID],
        reject: Mapping[MessageKey, Refusal] | None = None,
    ) -> Prepared:
        """Prepare in a worker; after a death, a started pool is in place before it raises."""
        parcel = self._dock.ship(partitions)
        read = False
        try:
            result = await self.call(
                _prepare_parcel, self._topic, parcel, self._max_bytes, exclude, reject
            )
            read = True
        except WorkerDied:
            raise
        except Exception:
            read = True  # raised by the worker, done with the parcel
            raise
        finally:
            self._dock.done(parcel, read=read)
        return restored(result, partitions)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a worker; after a death, a started pool is in place."""
        pool = self._pool
        assert pool is not None  # started
        try:
            return await call(pool, function, *args)
        except WorkerDied:
            raise await self._replace(pool) from None

    async def start(self) -> None:
        self._pool = pool = process_pool(self.size, tune_gc)
        # Start the workers now (imports take a second), not on the first batch;
        # a worker that cannot prepare nothing cannot prepare anything.
        empty = (call(pool, prepare, self._topic, [], 0) for _ in range(self.size))
        results = await asyncio.gather(*empty, return_exceptions=True)
        for error in (r for r in results if isinstance(r, BaseException)):
            # OSError: spawning failed, or a child that died at once broke its pipe.
            if not isinstance(error, WorkerDied | OSError):
                raise error
            codes = await shut_down(pool)
            self._dock.close()  # the service stops: nothing will be handed over
            raise _failed(f"decode workers cannot start (exit codes: {codes}; {error!r})")

    async def close(self) -> None:
        try:
            if self._pool is not None:
                self._closing = self._pool
                pool, self._pool = self._pool, None
                await shut_down(pool)
        finally:
            self._dock.close()  # no worker reads a file now, or it is being killed

    def kill(self) -> None:
        """End the worker processes at once (a close that ran out of time)."""
        pool = self._pool or self._closing
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        self._dock.close()

    async def _replace(self, broken: ProcessPoolExecutor) -> WorkerDied:
        """A started pool in place of ``broken``; the death, with the exit codes."""
        codes: list[int] = []
        async with self._replacing:  # every call the broken pool held fails at once
            if self._pool is broken:
                if self._deaths is not None:
                    self._deaths.inc()
                codes = await shut_down(broken)
                await self.start()
        return WorkerDied(codes)


def _prepare_parcel(
    topic: str,
    parcel: Parcel,
    max_bytes: int,
    exclude: frozenset[UUID],
    reject: Mapping[MessageKey, Refusal] | None,
) -> Prepared:
    """:func:`prepare` in a worker, of the records in ``parcel``."""
    with parcel.opened() as partitions:
        return prepare(topic, partitions, max_bytes, exclude, reject)


def _found(batch: Batch, culprits: Mapping[MessageKey, Refusal]) -> Mapping[MessageKey, Refusal]:
    """The culprits not known before, logged."""
    new = {k: r for k, r in culprits.items() if k not in batch.rejects}
    log_unstorable(new)
    return new


def _failed(reason: str) -> DecodeWorkersFailed:
    log.error("decode_workers_failed", reason=reason, action="stopping")
    return DecodeWorkersFailed(reason)
