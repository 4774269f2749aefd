"""Progress lines: every N events like the original producer, but at most once a second.

At 50 000 events/s a line per ten events would be the bottleneck and unreadable;
the throttle keeps the log useful at any rate while low rates still see every
N-th event. The first line comes as soon as N events were sent. The same
counts feed the Prometheus metrics when given.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from clickstream_producer.metrics import ProducerMetrics

log = structlog.get_logger()


class Progress:
    def __init__(
        self,
        every: int,
        *,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: ProducerMetrics | None = None,
    ) -> None:
        self._every = every
        self._metrics = metrics
        self._min_interval = min_interval_s
        self._clock = clock
        self._started = clock()
        self._last_time = self._started
        self._last_count = 0
        # The first line may come at once: the throttle is between lines.
        self._quiet_until = self._started
        self._next_due = every
        self.sent = 0
        self.acked = 0

    def sent_events(self, count: int) -> None:
        self.sent += count
        if self._metrics is not None:
            self._metrics.produced.inc(count)
        if self.sent >= self._next_due:
            now = self._clock()
            if now >= self._quiet_until:
                self._emit("progress", now)
                self._quiet_until = now + self._min_interval
            # Next line at the next multiple of `every` after this one.
            self._next_due = (self.sent // self._every + 1) * self._every

    def acked_events(self, count: int) -> None:
        self.acked += count
        if self._metrics is not None:
            self._metrics.acknowledged.inc(count)

    def finish(self) -> None:
        self._emit("finished", self._clock(), overall=True)

    def _emit(self, event: str, now: float, *, overall: bool = False) -> None:
        since = self._started if overall else self._last_time
        count = self.sent if overall else self.sent - self._last_count
        elapsed = now - since
        rate = round(count / elapsed, 1) if elapsed > 0 else 0.0
        log.info(event, events=self.sent, acked=self.acked, rate=rate)
        if self._metrics is not None:
            self._metrics.rate.set(rate)
        self._last_time, self._last_count = now, self.sent
