"""Offset ranges follow the consumer's position; stale batches cost no extra seek."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiokafka import TopicPartition

from clickstream_aggregator.mirror import OffsetMirror
from clickstream_aggregator.positions import OffsetOutOfRange, Positions
from clickstream_aggregator.validate import PartitionRange

TOPIC = "events"


@dataclass
class Rec:
    offset: int
    key: bytes | None = None
    value: bytes | None = b"{}"
    timestamp: int = 0


@dataclass
class FakeConsumer:
    """The parts of AIOKafkaConsumer that Positions and OffsetMirror use."""

    position_of: dict[int, int] = field(default_factory=dict)
    high: dict[int, int] = field(default_factory=dict)
    seeks: list[tuple[int, int]] = field(default_factory=list)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    commit_hangs: bool = False

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))
        self.position_of[tp.partition] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.position_of[tp.partition]

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high.get(tp.partition)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, p) for p in range(4)}

    async def commit(self, offsets: dict[TopicPartition, object]) -> None:
        if self.commit_hangs:
            await asyncio.Event().wait()
        self.commits.append({tp: o.offset for tp, o in offsets.items()})  # type: ignore[attr-defined]


def _positions() -> tuple[FakeConsumer, Positions]:
    consumer = FakeConsumer()
    positions = Positions(consumer, TOPIC)  # type: ignore[arg-type]
    positions.claimed(0, 100, log_start=0)
    consumer.seeks.clear()
    return consumer, positions


async def test_a_range_spans_the_gap_a_transaction_marker_leaves() -> None:
    consumer, positions = _positions()
    # Records 100..104, then a commit marker at 105: the consumer's position is 106.
    consumer.position_of[0] = 106
    first = (await positions.raw({0: [Rec(o) for o in range(100, 105)]}))[0]
    assert (first.first, first.next) == (100, 106)
    # A fetch that returned only the marker moved nothing we track; the next
    # batch starts where the last one ended, so stored offsets stay contiguous.
    consumer.position_of[0] = 110
    second = (await positions.raw({0: [Rec(o) for o in range(106, 110)]}))[0]
    assert (second.first, second.next) == (106, 110)
    positions.committed([first.span])
    assert positions.outdated({0: second.span}) == set()


async def test_a_gap_before_the_first_record_belongs_to_the_batch() -> None:
    consumer, positions = _positions()
    # The records 100..101 were an aborted transaction (skipped): data starts at 103.
    consumer.position_of[0] = 105
    raw = (await positions.raw({0: [Rec(103), Rec(104)]}))[0]
    assert (raw.first, raw.next, raw.offsets) == (100, 105, [103, 104])


async def test_after_a_stale_batch_the_consumer_is_moved_only_if_it_heads_elsewhere() -> None:
    consumer, positions = _positions()
    consumer.position_of[0] = 150
    raw = (await positions.raw({0: [Rec(o) for o in range(100, 150)]}))[0]
    # PostgreSQL already stores 150 (the batch's own earlier attempt): the next
    # batch, already fetched from 150, is valid; no seek throws it away.
    positions.stale(0, 150)
    assert consumer.seeks == []
    assert positions.outdated({0: PartitionRange(0, 150, 200)}) == set()
    # Stored somewhere else: seek there once; batches fetched before are dropped unwritten.
    positions.stale(0, 120)
    assert consumer.seeks == [(0, 120)]
    assert positions.outdated({0: raw.span}) == {0}
    positions.stale(0, 120)
    assert consumer.seeks == [(0, 120)]


async def test_a_batch_dropped_unwritten_moves_the_consumer_only_if_nothing_came_after() -> None:
    consumer, positions = _positions()
    # Our own claim moved the stored offset to 100 after this replica applied
    # [100, 130): stored 130, while the consumer fetched [100, 120) and [120, 140) again.
    positions.committed([PartitionRange(0, 100, 130)])
    consumer.position_of[0] = 120
    older = (await positions.raw({0: [Rec(o) for o in range(100, 120)]}))[0]
    consumer.position_of[0] = 140
    newer = (await positions.raw({0: [Rec(o) for o in range(120, 140)]}))[0]
    assert positions.outdated({0: older.span}) == {0}
    assert consumer.seeks == []  # a later batch is in hand: judged on its own
    assert positions.outdated({0: newer.span}) == {0}
    assert consumer.seeks == [(0, 130)]  # the newest fetched was outdated: back to stored


async def test_records_of_partitions_not_claimed_are_left_out() -> None:
    consumer, positions = _positions()
    consumer.position_of.update({0: 101, 1: 11})
    assert set(await positions.raw({0: [Rec(100)], 1: [Rec(10)]})) == {0}


def test_a_stored_offset_outside_the_log_is_refused() -> None:
    consumer = FakeConsumer()
    positions = Positions(consumer, TOPIC)  # type: ignore[arg-type]
    with pytest.raises(OffsetOutOfRange, match="before the log start 500"):
        positions.claimed(0, 100, log_start=500)
    positions.claimed(1, 5000, log_start=0)
    positions.check_in_range({1})  # no fetch answered yet: nothing known
    consumer.high[1] = 5000
    positions.check_in_range({1})
    consumer.high[1] = 40  # the topic was recreated: its log ends far before
    with pytest.raises(OffsetOutOfRange, match="beyond the log end 40"):
        positions.check_in_range({1})


async def test_the_offset_mirror_never_holds_up_and_sends_the_newest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = FakeConsumer()
    mirror = OffsetMirror(consumer, TOPIC)  # type: ignore[arg-type]
    mirror.note([PartitionRange(0, 0, 10), PartitionRange(1, 0, 5)])
    mirror.note([PartitionRange(0, 10, 20)])
    await mirror.flush()
    assert consumer.commits == [{TopicPartition(TOPIC, 0): 20, TopicPartition(TOPIC, 1): 5}]
    # A coordinator that never answers: the attempt is bounded, then dropped.
    monkeypatch.setattr("clickstream_aggregator.mirror._ATTEMPT_TIMEOUT_S", 0.05)
    consumer.commit_hangs = True
    mirror.note([PartitionRange(0, 20, 30)])
    await asyncio.wait_for(mirror.flush(), timeout=2)
    assert len(consumer.commits) == 1
