"""Where a backfill's events are generated: worker processes, or the publishing one.

At ``--rate 0`` generating and encoding journeys is most of the producer's CPU.
``PRODUCER_GENERATOR_WORKERS`` moves it out of the process that fills and sends
Kafka batches:

* 0: one generator, inline; 1: the same generator in a worker process, so the
  same seed gives exactly the events ``EventGenerator(seed=...)`` gives;
* N ≥ 2: N generators, each with its share of the users and sessions and a seed
  derived from ``--seed`` and its index, in parallel. The same seed and N give
  the same events.

Every source produces the events of one window of simulated time at a time
(one window ahead of the publisher), and the windows are merged by event time,
so the stream stays in time order however many generators make it.
"""

from __future__ import annotations

import asyncio
import heapq
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from operator import itemgetter
from types import TracebackType
from typing import Final, Self

from clickstream_producer.generator import MEAN_EVENT_GAP_S, EventGenerator
from clickstream_producer.wire import check_matches_contract, encode_record
from clickstream_runtime.workers import process_pool, shut_down

#: Events per source and window: large enough to amortise the hand-over, small
#: enough that a stop is prompt and memory stays flat.
WINDOW_EVENTS: Final = 2000


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything that determines the event sequence."""

    seed: int
    users: int
    concurrent_sessions: int
    start: datetime

    def build(self) -> EventGenerator:
        return EventGenerator(
            seed=self.seed,
            users=self.users,
            concurrent_sessions=self.concurrent_sessions,
            start=self.start,
        )

    def split(self, parts: int) -> list[GeneratorSpec]:
        """``parts`` independent generators sharing the users and sessions (1: itself)."""
        if parts <= 1:
            return [self]
        return [
            replace(
                self,
                seed=self.seed * 1_000_003 + index,
                users=max(1, _share(self.users, parts, index)),
                concurrent_sessions=max(1, _share(self.concurrent_sessions, parts, index)),
            )
            for index in range(parts)
        ]

    @property
    def window_ms(self) -> int:
        """Simulated time holding about ``WINDOW_EVENTS`` events of this generator."""
        rate = min(self.concurrent_sessions, self.users) / MEAN_EVENT_GAP_S
        return max(1, int(WINDOW_EVENTS / rate * 1000))


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Encoded messages in time order: Kafka keys, values and timestamps (epoch ms)."""

    keys: list[bytes]
    values: list[bytes]
    times_ms: list[int]

    def __len__(self) -> int:
        return len(self.values)

    def head(self, count: int) -> Chunk:
        return Chunk(self.keys[:count], self.values[:count], self.times_ms[:count])


def encode_window(generator: EventGenerator, end_ms: int, *, check: bool = False) -> Chunk:
    """The generator's events before ``end_ms``, encoded; ``check``: against the contract."""
    records = generator.records_before(end_ms)
    if check:
        check_matches_contract(records[:200])
    keys, values = [], []
    for record in records:
        key, value = encode_record(record)
        keys.append(key)
        values.append(value)
    return Chunk(keys, values, [r.time_ms for r in records])


def merge(chunks: list[Chunk]) -> Chunk:
    """One chunk in time order; ties keep the sources' order (deterministic)."""
    if len(chunks) == 1:
        return chunks[0]
    rows = heapq.merge(
        *(zip(c.times_ms, c.keys, c.values, strict=True) for c in chunks), key=itemgetter(0)
    )
    times, keys, values = [], [], []
    for time_ms, key, value in rows:
        times.append(time_ms)
        keys.append(key)
        values.append(value)
    return Chunk(keys, values, times)


# A worker process's generator, built once by the pool's initializer.
_worker_generator: EventGenerator | None = None


def _start_worker(spec: GeneratorSpec) -> None:
    global _worker_generator  # noqa: PLW0603 - the per-process state of a pool worker
    _worker_generator = spec.build()


def _worker_window(end_ms: int, check: bool) -> Chunk:
    assert _worker_generator is not None, "the pool's initializer builds it"
    return encode_window(_worker_generator, end_ms, check=check)


class _Source:
    """One generator, in a worker process or inline."""

    def __init__(self, spec: GeneratorSpec, *, in_worker: bool) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._generator: EventGenerator | None = None
        if in_worker:
            self._pool = process_pool(1, _start_worker, (spec,))
        else:
            self._generator = spec.build()

    def window(self, end_ms: int, check: bool) -> asyncio.Future[Chunk]:
        if self._pool is not None:
            loop = asyncio.get_running_loop()
            return loop.run_in_executor(self._pool, _worker_window, end_ms, check)
        assert self._generator is not None
        done: asyncio.Future[Chunk] = asyncio.get_running_loop().create_future()
        done.set_result(encode_window(self._generator, end_ms, check=check))
        return done

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await shut_down(pool)


class Chunks:
    """Hands out ``limit`` events (``math.inf``: endless) in time order, a window at a time."""

    def __init__(self, spec: GeneratorSpec, limit: float, *, workers: int) -> None:
        self._specs = spec.split(workers)
        self._in_worker = workers > 0
        self._limit = limit
        self._handed_out = 0
        self._window_ms = min(s.window_ms for s in self._specs)
        self._end_ms = int(spec.start.timestamp() * 1000)
        self._sources: list[_Source] = []
        self._ahead: list[asyncio.Future[Chunk]] = []

    async def __aenter__(self) -> Self:
        self._sources = [_Source(s, in_worker=self._in_worker) for s in self._specs]
        self._ahead = self._request(check=True)
        # Ready once every generator is built and has its first window.
        await asyncio.wait(self._ahead)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for future in self._ahead:
            future.cancel()  # generated for nothing: the run is over
        for source in self._sources:
            await source.close()

    async def next(self) -> Chunk | None:
        """The next events in time order, or ``None`` once ``limit`` were handed out."""
        while self._handed_out < self._limit:
            current, self._ahead = self._ahead, self._request(check=False)
            chunk = merge(list(await asyncio.gather(*current)))
            if len(chunk) == 0:
                continue  # a quiet window (few sessions, long pauses)
            if self._handed_out + len(chunk) > self._limit:
                chunk = chunk.head(int(self._limit - self._handed_out))
            self._handed_out += len(chunk)
            return chunk
        return None

    def _request(self, *, check: bool) -> list[asyncio.Future[Chunk]]:
        self._end_ms += self._window_ms
        return [source.window(self._end_ms, check) for source in self._sources]
