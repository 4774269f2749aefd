"""Stored offsets against the partitions' logs: lag, or an offset the log does not have.

The aggregator stores the next offset to apply per partition in PostgreSQL
(``consumer_offsets``). It must lie within the partition's log,
``log start <= stored <= log end``:

* beyond the log end: the topic was deleted and recreated, or
  ``KAFKA_BOOTSTRAP_SERVERS`` points at another cluster. The aggregator will not
  consume that partition: it stops (``offset_out_of_range``) once the
  partition's leader confirms it, after ``AGGREGATOR_LOG_END_WAIT_S``.
  A high watermark trails for a moment after a leader election, so the check
  reads the log again after a short wait before it fails (``check.kafka``).
* before the log start: retention deleted messages the aggregator had not
  applied yet; they are lost to the metrics.

Either is a FAIL with the fix; a clipped "lag 0" would hide both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LogRange:
    """``start``: the first offset still in the log; ``end``: the next offset to be written."""

    start: int
    end: int


@dataclass(frozen=True)
class OutOfRange:
    partition: int
    stored: int
    log: LogRange

    @property
    def beyond_end(self) -> bool:
        return self.stored > self.log.end

    def describe(self) -> str:
        if self.beyond_end:
            return (
                f"partition {self.partition}: stored offset {self.stored} is beyond "
                f"the log end {self.log.end}"
            )
        return (
            f"partition {self.partition}: stored offset {self.stored} is before "
            f"the log start {self.log.start} ({self.log.start - self.stored} message(s) "
            "deleted by retention before they were applied)"
        )


@dataclass(frozen=True)
class Judgement:
    lags: dict[int, int] = field(default_factory=dict)
    out_of_range: list[OutOfRange] = field(default_factory=list)

    @property
    def total_lag(self) -> int:
        return sum(self.lags.values())


def judge(stored: Mapping[int, int], logs: Mapping[int, LogRange]) -> Judgement:
    """Lag per partition in ``logs``; stored offsets outside their log are listed instead.

    A partition without a stored offset is read from its log start when the
    aggregator claims it, so its lag is the whole log.
    """
    lags: dict[int, int] = {}
    wrong: list[OutOfRange] = []
    for partition, log in sorted(logs.items()):
        position = stored.get(partition, log.start)
        if position > log.end or position < log.start:
            wrong.append(OutOfRange(partition, position, log))
        else:
            lags[partition] = log.end - position
    return Judgement(lags, wrong)


def out_of_range_fix(wrong: list[OutOfRange], group: str, topic: str) -> str:
    """What to do, for the kinds of problem in ``wrong``."""
    partitions = ", ".join(str(w.partition) for w in wrong)
    reset = (
        "with every aggregator stopped, run UPDATE consumer_offsets SET next_offset = NULL "
        f"WHERE group_id = {_literal(group)} AND topic = {_literal(topic)} "
        f"AND partition IN ({partitions}) "
        "(the next claim starts those partitions at their log start)"
    )
    causes = []
    if any(w.beyond_end for w in wrong):
        causes.append(
            "beyond the end: the topic was recreated or KAFKA_BOOTSTRAP_SERVERS is another "
            "cluster; if it is the wrong cluster, fix the variable instead"
        )
    if any(not w.beyond_end for w in wrong):
        causes.append(
            "before the start: those messages are gone from Kafka (raise retention.ms so that "
            "it does not happen again)"
        )
    return f"{'; '.join(causes)}. To resume: {reset}"


def _literal(text: str) -> str:
    """An SQL string literal, to paste into psql."""
    return "'" + text.replace("'", "''") + "'"
