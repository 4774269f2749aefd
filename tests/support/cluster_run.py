"""What the replicated-cluster scenarios measure and the load they run beside.

* :func:`read_stamped` reads a topic back with each record's broker timestamp
  (the scenario topics use ``LogAppendTime``: the moment the leader appended it),
  from which :func:`append_rates` and :func:`longest_gap` tell how the producer
  fared around a fault, partition by partition, without trusting its own clock.
* :func:`busy_processes` runs busy Python processes beside a test, as a loaded host
  would, and ends them.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from clickstream_devstack.servers import processes
from support.topic_reader import read_topic

#: ``ConsumerRecord.timestamp_type`` of a broker-set timestamp (0 is CreateTime).
LOG_APPEND_TIME = 1


@dataclass(frozen=True)
class Stamped:
    partition: int
    offset: int
    appended_ms: int  # the leader's append time (LogAppendTime)
    key: bytes | None
    value: bytes | None


async def read_stamped(bootstrap: str, topic: str, partitions: int) -> list[Stamped]:
    """Every record of ``topic`` (``read_uncommitted``), in (partition, offset) order;
    the topic is no longer written to."""
    stamped = []
    for r in await read_topic(bootstrap, topic, partitions, isolation="read_uncommitted"):
        if r.timestamp_type != LOG_APPEND_TIME:
            raise AssertionError(f"{topic} is not LogAppendTime: {r}")
        stamped.append(Stamped(r.partition, r.offset, r.timestamp_ms, r.key, r.value))
    return stamped


def append_rates(
    records: Iterable[Stamped], partitions: Iterable[int], start_ms: int, end_ms: int
) -> list[int]:
    """Records appended to ``partitions`` in each whole second from ``start_ms`` to ``end_ms``."""
    wanted = set(partitions)
    per_second = Counter(
        (r.appended_ms - start_ms) // 1000
        for r in records
        if r.partition in wanted and start_ms <= r.appended_ms < end_ms
    )
    return [per_second.get(second, 0) for second in range((end_ms - start_ms) // 1000)]


def longest_gap(records: Sequence[Stamped], partitions: Iterable[int]) -> tuple[float, int]:
    """The longest time (s) no record was appended to any of ``partitions`` while the
    producer ran (first to last append), and when it began (ms)."""
    wanted = set(partitions)
    times = sorted(r.appended_ms for r in records if r.partition in wanted)
    if len(times) < 2:
        return 0.0, times[0] if times else 0
    gap, at = max((b - a, a) for a, b in itertools.pairwise(times))
    return gap / 1000, at


@contextlib.contextmanager
def busy_processes(workers: int) -> Iterator[None]:
    """``workers`` busy processes (``while True: pass``) for the length of a ``with``."""
    children: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(workers):
            children.append(
                subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            )
        yield
    finally:
        for child in children:
            processes.kill(child)
