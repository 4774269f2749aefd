"""Statistics, rates and the RSS sampler: the measuring tools every scenario shares.

The statistics are pure functions (unit-tested); the sampler is a thread so that
a blocking call in the bench's event loop (stopping a service, say) cannot
leave a gap in the memory curve.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Iterable, Sequence

import psutil

from clickstream_devstack.bench.sampling import ThreadSampler

#: Decimal megabytes, the unit the targets are written in.
MB = 1_000_000


def median(values: Iterable[float]) -> float:
    """The median; NaN for no values (a scenario that produced nothing still gets a row)."""
    data = list(values)
    return statistics.median(data) if data else math.nan


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0–100), linear between closest ranks; NaN for no values.

    Linear interpolation rather than nearest rank: with ~300 probes a p99 then
    moves smoothly instead of jumping between the two largest samples.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    data = sorted(values)
    if not data:
        return math.nan
    position = (len(data) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


def rate(count: float, seconds: float) -> float:
    """Events per second; NaN when the interval is empty (never a division error)."""
    return count / seconds if seconds > 0 else math.nan


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


class RssSampler(ThreadSampler):
    """Peak and last resident set size of some processes (children included), every ``interval`` s.

    The figure is per process, not summed: with several replicas the question is
    how much one replica needs.
    """

    def __init__(self, pids: Sequence[int], *, interval: float = 0.2) -> None:
        super().__init__(name="rss-sampler", interval=interval)
        self._processes = [psutil.Process(pid) for pid in pids]
        self.peak_bytes = 0
        #: (monotonic time, bytes) of every sample, to tell growth from a one-off peak.
        self.series: list[tuple[float, int]] = []

    def sample(self) -> None:
        largest = 0
        for process in self._processes:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                tree = [process, *process.children(recursive=True)]
                total = 0
                for member in tree:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        total += member.memory_info().rss
                largest = max(largest, total)
        if largest:
            self.series.append((time.monotonic(), largest))
            self.peak_bytes = max(self.peak_bytes, largest)

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / MB if self.series else math.nan

    def halves_mb(self) -> tuple[float, float]:
        """Peak RSS in the first and in the second half of the sampling time.

        A per-batch working set shows as the same peak in both halves; state that
        accumulates (a cache keyed by session, say) shows as a higher second half.
        """
        return split_peaks([(t, b / MB) for t, b in self.series])


def split_peaks(series: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The largest value before and from the midpoint of the series' time span."""
    if not series:
        return math.nan, math.nan
    middle = (series[0][0] + series[-1][0]) / 2
    first = [v for t, v in series if t < middle]
    second = [v for t, v in series if t >= middle]
    return max(first, default=math.nan), max(second, default=math.nan)
