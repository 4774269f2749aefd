"""Is a stored offset outside its partition's log? The leader decides, after a wait.

A fetch's high watermark is no verdict: right after a leader election the new
leader's high watermark trails until its followers fetch again, and even a
normal fetch response may carry a high watermark older than the records it
holds. Kafka's own OFFSET_OUT_OF_RANGE to a fetch is a hint of the same kind.
So a stored offset beyond what a fetch reports only starts a wait
(:class:`Suspicions`); once the doubt has lasted ``wait_s``, the partition's
leader is asked for its log start and end (ListOffsets, retried while the
leader moves or has no high watermark yet), and only its answer stops the
replica, naming the case (:func:`place`).

The log end is the larger of the leader's listed end and the fetched high
watermark: some brokers (Tansu) under-report the listed end, and a fetch never
reports records that do not exist.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = structlog.get_logger()

#: Pause between two questions to a leader that did not answer.
_ASK_AGAIN_S = 0.5


class Case(enum.Enum):
    IN_LOG = "in the log"
    BEYOND_END = "beyond the log end"
    BEFORE_START = "before the log start"


@dataclass(frozen=True)
class LogBounds:
    """``start``: the first offset still in the log; ``end``: the next offset to be written."""

    start: int
    end: int


def place(stored: int, bounds: LogBounds) -> Case:
    """Where ``stored`` (the next offset to apply) lies; ``start <= stored <= end`` is in."""
    if stored < bounds.start:
        return Case.BEFORE_START
    if stored > bounds.end:
        return Case.BEYOND_END
    return Case.IN_LOG


class OffsetOutOfRange(RuntimeError):
    """The partition's leader says the stored offset is outside its log: which case, and why."""

    def __init__(self, partition: int, stored: int, bounds: LogBounds, case: Case):
        if case is Case.BEFORE_START:
            why = (
                f"before the log start {bounds.start}: {bounds.start - stored} record(s) were "
                "deleted (retention) before they were applied"
            )
        else:
            why = (
                f"beyond the log end {bounds.end}: the topic was recreated "
                "(or KAFKA_BOOTSTRAP_SERVERS names another cluster)"
            )
        super().__init__(
            f"partition {partition}: stored offset {stored} is {why}, as the partition's "
            "leader reports. Inspect consumer_offsets (clickstream-check) before "
            "resetting it by hand."
        )
        self.partition = partition
        self.stored = stored
        self.bounds = bounds
        self.case = case


class Suspicions:
    """Per partition: since when its stored offset has looked outside the log."""

    def __init__(self, wait_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.wait_s = wait_s
        self._clock = clock
        self._since: dict[int, float] = {}

    def doubt(self, partition: int) -> bool:
        """Note a doubt; True once it has lasted ``wait_s`` (time to ask the leader)."""
        now = self._clock()
        since = self._since.setdefault(partition, now)
        return now - since >= self.wait_s

    def waited(self, partition: int) -> float | None:
        since = self._since.get(partition)
        return None if since is None else self._clock() - since

    def clear(self, partition: int) -> float | None:
        """No doubt any more; how long it lasted (None: there was none)."""
        since = self._since.pop(partition, None)
        return None if since is None else self._clock() - since

    def restart(self, partition: int) -> None:
        """The leader placed it in the log: doubt again only from now on."""
        self._since[partition] = self._clock()


async def leader_bounds(
    consumer: AIOKafkaConsumer, tp: TopicPartition, high: int | None, budget_s: float
) -> LogBounds | None:
    """The log start and end the partition's leader lists, or None if it gave no answer in time.

    aiokafka sends ListOffsets to the leader its metadata names and retries
    NOT_LEADER with fresh metadata; a new leader without a high watermark yet
    (OFFSET_NOT_AVAILABLE, unknown to aiokafka) and timeouts are asked again here.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    while True:
        try:
            async with asyncio.timeout(max(0.1, deadline - loop.time())):
                start = (await consumer.beginning_offsets([tp]))[tp]
                end = (await consumer.end_offsets([tp]))[tp]
        except (KafkaError, TimeoutError) as error:
            if loop.time() + _ASK_AGAIN_S >= deadline:
                log.warning("log_bounds_unanswered", partition=tp.partition, error=repr(error))
                return None
            await asyncio.sleep(_ASK_AGAIN_S)
            continue
        return LogBounds(start, max(end, high if high is not None else end, start))
