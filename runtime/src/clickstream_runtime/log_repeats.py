"""Collapse a library's repeated warnings into one line per interval with a count.

While a broker is down aiokafka logs the same connection error about forty
times a second. :class:`RepeatCollapser` keys stdlib records by logger, level
and message *template* (``record.msg`` before ``%`` formatting, so the same
error about another host or errno is still the same key): the first record of
a key is printed, the following ones within ``interval_s`` are only counted,
and when the interval ends one summary line is printed, the last suppressed
record with ``repeated=N`` (how many were not printed in that interval) and
``repeated_window_s``. A key that keeps repeating prints one summary per
interval; a key quiet for a whole interval is forgotten, so its next record is
printed again as a first occurrence. Records below WARNING are never collapsed.

:class:`CollapsingHandler` is the stream handler that applies it; a daemon
thread prints the summaries on time even when nothing else is logged, and
``close()`` (called by ``logging.shutdown`` at exit) prints what is pending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

_Key = tuple[str, int, str]


@dataclass
class _Window:
    started: float
    suppressed: int = 0
    last: logging.LogRecord | None = None


class RepeatCollapser:
    """Decides which records to print; thread-safe, clock injectable for tests."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._windows: dict[_Key, _Window] = {}
        self._lock = threading.Lock()

    def admit(self, record: logging.LogRecord) -> bool:
        """True if ``record`` is to be printed now; False if it is counted instead."""
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            expired = window is not None and now - window.started >= self.interval_s
            if window is None or (expired and not window.suppressed):
                self._windows[key] = _Window(started=now)
                return True
            window.suppressed += 1
            window.last = record
            return False

    def due(self, *, everything: bool = False) -> list[logging.LogRecord]:
        """Summary records of the intervals that ended (all pending ones with ``everything``)."""
        now = self._clock()
        summaries: list[logging.LogRecord] = []
        with self._lock:
            for key, window in list(self._windows.items()):
                if not everything and now - window.started < self.interval_s:
                    continue
                if window.suppressed and window.last is not None:
                    summaries.append(_summary(window.last, window.suppressed, now - window.started))
                    self._windows[key] = _Window(started=now)
                else:
                    del self._windows[key]
        return summaries


def _summary(last: logging.LogRecord, count: int, window_s: float) -> logging.LogRecord:
    record = logging.makeLogRecord(last.__dict__)
    # One compact line: the traceback was printed with the first occurrence.
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    record.repeated = count
    record.repeated_window_s = round(window_s, 1)
    return record


class CollapsingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` that prints repeated warnings once per interval with a count."""

    def __init__(self, stream: IO[str] | Any, interval_s: float) -> None:
        super().__init__(stream)
        self.collapser = RepeatCollapser(interval_s)
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="log-repeat-summaries", daemon=True)
        self._ticker.start()

    def emit(self, record: logging.LogRecord) -> None:
        self._emit_summaries(everything=False)
        if self.collapser.admit(record):
            super().emit(record)

    def flush_summaries(self) -> None:
        """Print the summaries of every interval that has ended (also done by the ticker)."""
        self._emit_summaries(everything=False)

    def close(self) -> None:
        self._stopping.set()
        self._emit_summaries(everything=True)
        super().close()

    def _emit_summaries(self, *, everything: bool) -> None:
        summaries = self.collapser.due(everything=everything)
        if not summaries:
            return
        with self.lock or threading.RLock():
            for summary in summaries:
                super().emit(summary)

    def _tick(self) -> None:
        # A summary is printed at most a quarter interval (or a second) late.
        period = min(1.0, self.collapser.interval_s / 4)
        while not self._stopping.wait(period):
            try:
                self._emit_summaries(everything=False)
            except Exception:  # logging must never kill its own thread
                self.handleError(logging.makeLogRecord({"msg": "repeat summary failed"}))
