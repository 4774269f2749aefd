"""The design producer's messages, keyed by user_id, prepared as the aggregator does.

Partitioned with the murmur2 partitioner kafka-python and aiokafka share, with
byte-identical re-sends: every distinct message is counted once, every re-send
is a duplicate, and every id is counted as derived.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal

from aiokafka.partitioner import murmur2

from clickstream_aggregator.prepare import prepare
from clickstream_aggregator.records import RawPartition
from clickstream_aggregator.session_columns import column_values
from support.design_producer import design_messages, with_resends

PARTITIONS = 4


def _partitioned(messages: list[tuple[bytes, bytes]]) -> list[RawPartition]:
    by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    for key, value in messages:
        by_partition[(murmur2(key) & 0x7FFFFFFF) % PARTITIONS].append((key, value))
    return [
        RawPartition(
            p,
            list(range(len(items))),
            [k for k, _ in items],
            [v for _, v in items],
            [0] * len(items),
        )
        for p, items in sorted(by_partition.items())
    ]


def test_each_distinct_message_counts_once_and_resends_are_duplicates() -> None:
    original = design_messages(1500, seed=21)
    sent = with_resends(original, share=0.1)
    prepared = prepare("clicks", _partitioned(sent), 1 << 20)
    assert prepared.dead_letters == []
    assert prepared.events == len(original)
    assert prepared.duplicates == len(sent) - len(original) > 0
    assert prepared.derived_ids == len(sent)
    columns = prepared.session_rows
    names = ("session_id", "total_events", "total_revenue", "device_type")
    rows = {row[0]: row for row in zip(*(column_values(columns, n) for n in names), strict=True)}
    events = [json.loads(v) for _k, v in original]
    sessions = {e["session_id"] for e in events}
    assert set(rows) == sessions
    for session_id, (_, total, cents, device) in rows.items():
        mine = [e for e in events if e["session_id"] == session_id]
        assert total == len(mine)
        assert Decimal(cents) / 100 == sum(  # in cents (session_columns)
            (Decimal(f"{e['price']:.2f}") for e in mine if e["event_type"] == "purchase"),
            Decimal("0.00"),
        )
        assert device == "unknown"
