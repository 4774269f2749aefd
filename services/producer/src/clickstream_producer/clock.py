"""Where simulated time starts and how it maps to the wall clock.

Two modes, same sessions and think times:

* ``--rate R`` (R > 0): live traffic. The simulated clock starts *now* and each
  event is released when the wall clock reaches its timestamp, so timestamps are
  wall time and sessions move at human pace. R also caps the release rate (a
  token bucket): if more events fall due than R allows they go out a little
  late with their original timestamps, as late-arriving clicks do. The
  simulation is sized for R (``clickstream_producer.sizing``) and starts in its
  steady state, so human-paced sessions add up to R events/s from the start.
  The clock starts once the producer can send (generator built, Kafka reached).
* ``--rate 0``: backfill, as fast as possible. The simulated clock advances by
  the think times without waiting. Unless ``--start`` is given it starts at
  ``now − (expected simulated span of the run)`` so that a ``--events N``
  backfill ends near now; an endless backfill starts one hour ago and runs on
  into the future.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Final

_ENDLESS_BACKFILL_SPAN: Final = timedelta(hours=1)


def simulated_start(
    now: datetime,
    *,
    rate: float,
    events: int,
    concurrent_sessions: int,
    mean_gap_s: float,
    start: datetime | None = None,
) -> datetime:
    if start is not None:
        return start
    if rate > 0:
        return now
    if events == 0:
        return now - _ENDLESS_BACKFILL_SPAN
    # concurrent_sessions / mean_gap_s events happen per simulated second.
    span_s = events * mean_gap_s / concurrent_sessions
    return now - timedelta(seconds=span_s)


class WallPacer:
    """Releases events no earlier than their timestamp and no faster than ``rate``."""

    def __init__(self, rate: float, *, burst_s: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("a wall-clock pacer needs a positive rate")
        self._interval = 1.0 / rate
        self._burst = max(1.0, rate * burst_s)
        self._tokens = self._burst
        self._refilled = time.monotonic()
        # Event times are epoch ms; the offset maps them onto the monotonic clock.
        self._offset = time.time() - self._refilled

    def delay(self, event_time_ms: int) -> float:
        """Seconds to wait before the event may go out (0 when it may go now)."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) / self._interval)
        self._refilled = now
        due = event_time_ms / 1000 - self._offset - now
        token_wait = (1.0 - self._tokens) * self._interval if self._tokens < 1.0 else 0.0
        return max(due, token_wait, 0.0)

    def due(self) -> tuple[int, int]:
        """After :meth:`delay` returned 0: (epoch ms before which events are due, how many may go).

        Lets the caller release every due event at once instead of one per call.
        """
        now_ms = int((time.monotonic() + self._offset) * 1000)
        return now_ms + 1, max(1, int(self._tokens))

    def take(self, count: int = 1) -> None:
        self._tokens -= count
