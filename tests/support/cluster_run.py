"""What the replicated-cluster scenarios measure and the load they run beside.

* :func:`read_stamped` reads a topic back with each record's broker timestamp
  (the scenario topics use ``LogAppendTime``: the moment the leader appended it),
  from which :func:`append_rates` and :func:`longest_gap` tell how the producer
  fared around a fault, partition by partition, without trusting its own clock.
* :class:`CpuLoad` runs busy Python processes beside a test, as a loaded host
  would, and ends them.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaConsumer, TopicPartition

from clickstream_devstack.servers import processes

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
    """Every record of ``topic``, in (partition, offset) order, up to the end offsets
    read at the start (the topic is no longer written to)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Stamped] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    if r.timestamp_type != LOG_APPEND_TIME:
                        raise AssertionError(f"{topic} is not LogAppendTime: {r}")
                    out.append(Stamped(tp.partition, r.offset, r.timestamp, r.key, r.value))
        out.sort(key=lambda s: (s.partition, s.offset))
        return out
    finally:
        await consumer.stop()


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


class CpuLoad:
    """``workers`` busy processes (``while True: pass``) for the length of a ``with``."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._children: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Self:
        for _ in range(self.workers):
            self._children.append(
                subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for child in self._children:
            processes.kill(child)
        self._children.clear()
