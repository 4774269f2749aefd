"""What an event costs: CPU of the aggregator and of PostgreSQL, and WAL, over a drain's window.

Rates on a shared machine move with whatever else runs; the CPU time and the
WAL an event costs hardly do. During a drain the bench samples, every
``interval`` seconds and stamped with the wall clock the services' logs use:

* the CPU seconds of the aggregator process trees (the service and its decode
  workers) and of the PostgreSQL server's (the postmaster and every backend
  and auxiliary process): user + system of each live process plus what its
  exited children left in its ``cutime``/``cstime``, so a worker pool that was
  replaced, or a backend that disconnected, still counts;
* the server's WAL position (``pg_current_wal_lsn()``, as bytes from ``0/0``).

The cost is the difference between the values interpolated at the first and
at the last ``batch_committed``, divided by the messages committed after the
first batch: the same window and count as the rate beside it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Self

import asyncpg
import psutil

from clickstream_devstack.bench.sampling import ThreadSampler

#: (wall-clock seconds since the epoch, cumulative value)
Series = list[tuple[float, float]]

_WAL_POSITION = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8"


def value_at(series: Sequence[tuple[float, float]], at: float) -> float:
    """The cumulative value at ``at``, linear between samples; NaN outside the sampled span.

    Outside the span nothing says how the value moved, and a window a sample
    does not cover is a bench bug worth a visible gap rather than a guess.
    """
    if not series or at < series[0][0] or at > series[-1][0]:
        return math.nan
    index = bisect.bisect_left(series, (at, -math.inf))
    t1, v1 = series[index]
    if t1 == at or index == 0:
        return v1
    t0, v0 = series[index - 1]
    return v0 + (v1 - v0) * (at - t0) / (t1 - t0)


def growth(series: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """How much the cumulative value grew from ``start`` to ``end`` (NaN if not covered)."""
    return value_at(series, end) - value_at(series, start)


def tree_cpu_seconds(process: psutil.Process) -> float:
    """User + system seconds of ``process``, its live descendants and its reaped children.

    A reaped child's time is in its parent's ``children_*`` fields and nowhere
    else, a live one's only in its own: the sum counts each process once.
    """
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = member.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


class CpuSampler(ThreadSampler):
    """Samples the CPU seconds of named process trees in a thread, with wall-clock stamps."""

    sample_on_exit = True  # the last one after the window, whatever the interval

    def __init__(self, roots: Mapping[str, Sequence[int]], *, interval: float = 0.2) -> None:
        super().__init__(name="cpu-sampler", interval=interval)
        self._roots = {name: [psutil.Process(pid) for pid in pids] for name, pids in roots.items()}
        self.series: dict[str, Series] = {name: [] for name in roots}

    def sample(self) -> None:
        for name, processes in self._roots.items():
            seconds = 0.0
            for process in processes:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    seconds += tree_cpu_seconds(process)
            self.series[name].append((time.time(), seconds))


class WalSampler:
    """Samples the server's WAL position on a connection of its own, as an asyncio task."""

    def __init__(self, dsn: str, *, interval: float = 0.2) -> None:
        self._dsn = dsn
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self.series: Series = []

    async def sample(self) -> None:
        assert self._connection is not None
        position = float(await self._connection.fetchval(_WAL_POSITION))
        self.series.append((time.time(), position))

    async def _loop(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._interval)

    async def __aenter__(self) -> Self:
        self._connection = await asyncpg.connect(self._dsn)
        await self.sample()
        self._task = asyncio.create_task(self._loop(), name="wal-sampler")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        assert self._connection is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        try:
            await self.sample()
        finally:
            await self._connection.close()


@dataclass(frozen=True)
class Costs:
    """Per event over the steady-state window, and the aggregator's over its whole run."""

    aggregator_cpu_us: float
    postgres_cpu_us: float
    wal_bytes: float
    #: The aggregator's CPU from process start to the last sample, per message of the topic.
    aggregator_cpu_us_with_startup: float

    @classmethod
    def measure(
        cls,
        cpu: Mapping[str, Sequence[tuple[float, float]]],
        wal: Sequence[tuple[float, float]],
        *,
        start: float,
        end: float,
        events: int,
        total: int,
    ) -> Costs:
        def per_event(grown: float, count: int, scale: float) -> float:
            return grown * scale / count if count > 0 else math.nan

        aggregator = cpu["aggregator"]
        whole = aggregator[-1][1] if aggregator else math.nan
        return cls(
            aggregator_cpu_us=per_event(growth(aggregator, start, end), events, 1e6),
            postgres_cpu_us=per_event(growth(cpu["postgres"], start, end), events, 1e6),
            wal_bytes=per_event(growth(wal, start, end), events, 1.0),
            aggregator_cpu_us_with_startup=per_event(whole, total, 1e6),
        )
