"""Preparing a batch: decode, dead-letter, dedupe and aggregate, inline or in a worker."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from clickstream_aggregator import decoding, dedupe_rows
from clickstream_aggregator.aggregate import aggregate
from clickstream_aggregator.batch import Batch
from clickstream_aggregator.prepare import combine, prepare
from clickstream_aggregator.records import RawPartition
from clickstream_aggregator.session_columns import COUNTED_TYPES, column_values, session_rows
from clickstream_aggregator.workers import Preparer
from clickstream_schema import ClickEvent, encode
from support.feed import generate

TOPIC = "clicks"
MAX_BYTES = 8192
POISON = [None, b"not json", b"[1]", b'{"event_id": "x"}', b"\xc3\x28"]


def _partition(partition: int, first_offset: int, values: list[bytes | None]) -> RawPartition:
    return RawPartition(
        partition,
        list(range(first_offset, first_offset + len(values))),
        [b"key-%d" % i for i in range(len(values))],
        values,
        [1_700_000_000_000 + i for i in range(len(values))],
    )


def _values(events: list[ClickEvent]) -> list[bytes | None]:
    return [encode(e)[1] for e in events]


def test_prepare_counts_every_message_once_and_dead_letters_the_bad_ones() -> None:
    events = generate(400, seed=5)
    values = _values(events)
    left = values[:200] + POISON
    # The first event again, on the other partition: a duplicate within the batch.
    right = [values[0], *values[200:]]
    batch = Batch(TOPIC, {3: _partition(3, 1000, right), 1: _partition(1, 50, left)})

    prepared = prepare(TOPIC, batch.partitions(), MAX_BYTES)

    assert prepared.events == len(events)
    assert prepared.duplicates == 1
    assert prepared.excluded == 0
    # Sorted by id (the dedupe index's lock order), one binary COPY row of one field each.
    by_id = sorted(events, key=lambda e: e.event_id.bytes)
    assert prepared.event_ids() == [e.event_id for e in by_id]
    rows = dedupe_rows.split(prepared.event_rows)
    assert [dedupe_rows.ROW.unpack(r) for r in rows] == [(1, 16, e.event_id.bytes) for e in by_id]
    letters = prepared.dead_letters
    assert [(d.partition, d.offset, d.value) for d in letters] == [
        (1, 50 + 200 + i, value) for i, value in enumerate(POISON)
    ]
    assert {d.reason for d in letters} == {"empty", "not_json", "not_object", "schema", "not_utf8"}
    assert letters[0].key == b"key-200"
    columns = prepared.session_rows
    assert column_values(columns, "session_id") == sorted({e.session_id for e in events})
    assert sum(column_values(columns, "total_events")) == len(events)
    revenue = sum((e.price or Decimal(0)) for e in events if e.event_type == "purchase")
    # Revenue travels in cents (session_columns).
    assert sum(column_values(columns, "total_revenue")) == revenue * 100
    assert batch.ranges[1].first == 50
    assert batch.ranges[1].next == 50 + len(left)
    assert batch.size == len(left) + len(right)


def test_prepare_without_ids_an_earlier_batch_applied() -> None:
    events = generate(300, seed=9)
    batch = Batch(TOPIC, {0: _partition(0, 0, _values(events))})
    applied_before = {events[10].event_id, events[250].event_id}

    full = prepare(TOPIC, batch.partitions(), MAX_BYTES)
    reduced = prepare(TOPIC, batch.partitions(), MAX_BYTES, frozenset(applied_before))

    assert reduced.events == full.events - 2
    assert reduced.excluded == 2
    assert not applied_before & set(reduced.event_ids())
    kept = [e for e in events if e.event_id not in applied_before]
    assert reduced.session_rows == session_rows(aggregate(kept).values())


def test_type_counters_follow_the_event_types() -> None:
    events = generate(500, seed=21)
    prepared = prepare(TOPIC, [_partition(0, 0, _values(events))], MAX_BYTES)
    rows = prepared.session_rows
    totals = {kind: sum(column_values(rows, f"{kind}_count")) for kind in COUNTED_TYPES}
    expected = Counter(e.event_type.value for e in events)
    assert totals == {kind: expected.get(kind, 0) for kind in COUNTED_TYPES}


def test_a_batch_without_some_partitions_must_be_prepared_again() -> None:
    events = generate(100, seed=2)
    values = _values(events)
    batch = Batch(TOPIC, {0: _partition(0, 0, values[:50]), 1: _partition(1, 7, values[50:])})
    rest = batch.without_partitions({0})

    assert list(rest.ranges) == [1]
    assert rest.ranges[1].first == 7
    assert prepare(TOPIC, rest.partitions(), MAX_BYTES).events == 50


@pytest.mark.parametrize("workers", [0, 1])
async def test_a_worker_process_prepares_the_same_result_as_inline(workers: int) -> None:
    events = generate(600, seed=4)
    batch = Batch(TOPIC, {2: _partition(2, 0, _values(events) + POISON)})
    expected = prepare(TOPIC, batch.partitions(), MAX_BYTES, frozenset({events[5].event_id}))

    async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=workers, inline_below=0) as preparer:
        got = await preparer.prepare(batch, frozenset({events[5].event_id}))

    assert got.prepared == expected
    assert got.exclude == frozenset({events[5].event_id})


def test_results_of_disjoint_partitions_combine_into_the_whole_batch_result() -> None:
    events = generate(900, seed=8)
    by_partition: dict[int, list[ClickEvent]] = {0: [], 1: [], 2: []}
    for event in events:  # a session's events on one partition, as keyed by session_id
        by_partition[hash(event.session_id) % 3].append(event)
    batch = Batch(TOPIC, {p: _partition(p, 0, _values(e)) for p, e in by_partition.items()})
    whole = prepare(TOPIC, batch.partitions(), MAX_BYTES)

    parts = [prepare(TOPIC, [raw], MAX_BYTES) for raw in batch.partitions()]

    assert combine(parts) == whole


def test_partitions_sharing_a_session_or_an_event_do_not_combine() -> None:
    events = generate(200, seed=12)
    values = _values(events)
    same_session = [_partition(0, 0, values[:100]), _partition(1, 0, values[100:])]
    copied_event = [_partition(0, 0, values[:1]), _partition(1, 0, values[:1])]
    assert {e.session_id for e in events[:100]} & {e.session_id for e in events[100:]}
    for partitions in (same_session, copied_event):
        assert combine([prepare(TOPIC, [raw], MAX_BYTES) for raw in partitions]) is None


async def test_several_workers_fall_back_to_the_whole_batch_when_partitions_overlap() -> None:
    events = generate(400, seed=13)
    values = _values(events)
    batch = Batch(TOPIC, {0: _partition(0, 0, values[:200]), 1: _partition(1, 0, values[200:])})

    async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=2, inline_below=0) as preparer:
        got = await preparer.prepare(batch)

    assert got.prepared == prepare(TOPIC, batch.partitions(), MAX_BYTES)


async def test_a_value_preparing_cannot_hold_inline_is_pinned_on_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Decoding that fails with an error the policy pins (not InvalidEvent): what a
    # value the aggregation cannot hold does. The rest of the batch is applied.
    events = generate(300, seed=14)
    values = _values(events)
    culprits = {values[17], values[240]}
    parse = decoding.parse

    def failing(value: bytes | None, **kwargs: int) -> ClickEvent:
        if value in culprits:
            raise OverflowError("a value preparing cannot hold")
        return parse(value, **kwargs)

    monkeypatch.setattr(decoding, "parse", failing)
    batch = Batch(TOPIC, {0: _partition(0, 100, values[:200]), 1: _partition(1, 0, values[200:])})

    async with Preparer(TOPIC, max_bytes=MAX_BYTES, workers=0) as preparer:
        ready = await preparer.prepare(batch)

    assert {k: r.reason for k, r in ready.batch.rejects.items()} == {
        (0, 117): "unstorable",
        (1, 40): "unstorable",
    }
    assert ready.batch.rejects[(0, 117)].error_class == "builtins.OverflowError"
    assert batch.rejects == {}  # the batch fetched is never written
    prepared = ready.prepared
    assert prepared.events == len(events) - 2
    assert [(d.partition, d.offset, d.reason) for d in prepared.dead_letters] == [
        (0, 117, "unstorable"),
        (1, 40, "unstorable"),
    ]
    kept = [e for i, e in enumerate(events) if i not in (17, 240)]
    assert prepared.session_rows == session_rows(aggregate(kept).values())
