"""Offset ranges follow the consumer's position; stale batches cost no extra seek."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, NotLeaderForPartitionError, UnknownError
from hypothesis import given
from hypothesis import strategies as st

from clickstream_aggregator.log_bounds import Case, LogBounds, place
from clickstream_aggregator.mirror import OffsetMirror
from clickstream_aggregator.positions import OffsetOutOfRange, Positions
from clickstream_aggregator.records import PartitionRange

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
    #: What the partition's leader lists (ListOffsets): start and end per partition.
    listed: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Errors the leader answers with first, one per ListOffsets request.
    list_errors: list[KafkaError] = field(default_factory=list)
    asked: int = 0

    async def _list(self, tp: TopicPartition, which: int) -> dict[TopicPartition, int]:
        self.asked += 1
        if self.list_errors:
            raise self.list_errors.pop(0)
        return {tp: self.listed[tp.partition][which]}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._list(tps[0], 0)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._list(tps[0], 1)

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


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


WAIT_S = 30.0


def _positions() -> tuple[FakeConsumer, Positions]:
    consumer = FakeConsumer()
    positions = Positions(consumer, TOPIC, WAIT_S)  # type: ignore[arg-type]
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


def _watched(stored: int = 5000) -> tuple[FakeConsumer, Positions, Clock]:
    consumer, clock = FakeConsumer(), Clock()
    positions = Positions(consumer, TOPIC, WAIT_S, clock)  # type: ignore[arg-type]
    positions.claimed(1, stored, log_start=0)
    return consumer, positions, clock


def test_a_stored_offset_before_the_log_start_is_refused_at_claim_naming_retention() -> None:
    positions = Positions(FakeConsumer(), TOPIC, WAIT_S)  # type: ignore[arg-type]
    with pytest.raises(OffsetOutOfRange, match="before the log start 500: 400 record") as error:
        positions.claimed(0, 100, log_start=500)
    assert error.value.case is Case.BEFORE_START
    assert "deleted (retention) before they were applied" in str(error.value)


async def test_a_high_watermark_behind_the_stored_offset_waits_then_asks_the_leader() -> None:
    consumer, positions, clock = _watched()
    await positions.check_in_range({1})  # no fetch answered yet: nothing known
    # Right after an election the new leader's high watermark trails (issue: 2510 vs 2499).
    consumer.high[1] = 4990
    await positions.check_in_range({1})
    clock.now += WAIT_S - 1
    await positions.check_in_range({1})
    assert consumer.asked == 0  # a doubt only, for the wait
    # Still behind after the wait: the leader lists the log as ending at 5010.
    consumer.listed[1] = (0, 5010)
    clock.now += 1
    await positions.check_in_range({1})
    assert consumer.asked == 2
    # In the log, so the doubt starts over: no question until another wait.
    clock.now += WAIT_S - 1
    await positions.check_in_range({1})
    assert consumer.asked == 2
    consumer.high[1] = 5010  # caught up: doubt gone
    clock.now += 5
    await positions.check_in_range({1})
    consumer.high[1] = 4999  # behind again, a new doubt with a wait of its own
    clock.now += WAIT_S - 1
    await positions.check_in_range({1})
    assert consumer.asked == 2


async def test_a_recreated_topic_stops_once_the_leader_confirms_and_says_which_case() -> None:
    consumer, positions, clock = _watched()
    consumer.high[1] = 40  # the topic was recreated: its log ends far before
    await positions.check_in_range({1})
    clock.now += WAIT_S
    # The leader moves and has no high watermark yet before it answers: asked again.
    consumer.list_errors = [NotLeaderForPartitionError(), UnknownError()]
    consumer.listed[1] = (0, 38)  # a broker that under-reports its end: the fetch's 40 counts
    with pytest.raises(OffsetOutOfRange, match="beyond the log end 40: the topic was recreated"):
        await positions.check_in_range({1})


async def test_retention_past_the_stored_offset_stops_once_the_leader_confirms() -> None:
    consumer, positions, clock = _watched(stored=100)
    # Kafka answers the fetch at 100 with OFFSET_OUT_OF_RANGE; no high watermark known.
    positions.refused(1, 100)
    await positions.check_in_range({1})
    clock.now += WAIT_S
    consumer.listed[1] = (300, 900)
    with pytest.raises(OffsetOutOfRange, match="before the log start 300: 200 record") as error:
        await positions.check_in_range({1})
    assert error.value.case is Case.BEFORE_START


async def test_a_refused_fetch_the_leader_disowns_is_retried_from_the_stored_offset() -> None:
    consumer, positions, clock = _watched(stored=100)
    positions.fetch_from[1] = 180  # fetched ahead of what is stored
    positions.refused(1, 180)
    await positions.check_in_range({1})
    assert consumer.asked == 0
    clock.now += WAIT_S
    consumer.listed[1] = (0, 150)
    consumer.seeks.clear()
    await positions.check_in_range({1})
    assert consumer.seeks == [(1, 100)]
    assert positions.fetch_from[1] == 100


async def test_a_leader_that_never_answers_is_an_outage_not_a_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("clickstream_aggregator.log_bounds._ASK_AGAIN_S", 0.001)
    consumer = FakeConsumer(list_errors=[UnknownError()] * 10_000)
    positions = Positions(consumer, TOPIC, 0.05)  # type: ignore[arg-type]
    positions.claimed(1, 5000, log_start=0)
    consumer.high[1] = 40
    await positions.check_in_range({1})
    await asyncio.sleep(0.06)
    await positions.check_in_range({1})  # asks for its budget, then keeps waiting
    assert consumer.asked > 1


@given(
    stored=st.integers(0, 10_000),
    start=st.integers(0, 10_000),
    length=st.integers(0, 10_000),
)
def test_placing_a_stored_offset(stored: int, start: int, length: int) -> None:
    case = place(stored, LogBounds(start, start + length))
    assert (case is Case.IN_LOG) == (start <= stored <= start + length)
    assert (case is Case.BEYOND_END) == (stored > start + length)


@given(
    trail=st.lists(
        st.tuples(st.integers(-3000, 3000), st.floats(0, 2 * WAIT_S)), min_size=1, max_size=40
    ),
    lead=st.integers(0, 3000),
)
async def test_whatever_fetches_report_a_log_that_holds_the_offset_never_stops(
    trail: list[tuple[int, float]], lead: int
) -> None:
    """High watermarks behind, ahead, moving back, for any time: the leader's log has it."""
    consumer, positions, clock = _watched(stored=5000)
    consumer.listed[1] = (0, 5000 + lead)
    for behind, elapsed in trail:
        consumer.high[1] = 5000 - behind
        clock.now += elapsed
        await positions.check_in_range({1})


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
