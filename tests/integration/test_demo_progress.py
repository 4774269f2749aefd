"""The demo's live numbers: each means what its label says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from clickstream_devstack.demo.progress import RATE_WINDOW_S, PipelineProgress, Rates, Snapshot
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from support.feed import as_messages, generate, publish

_TABLES = """
CREATE TABLE session_metrics (total_events int, last_event_timestamp timestamptz);
CREATE TABLE consumer_offsets (group_id text, topic text, partition int, next_offset bigint);
CREATE TABLE dead_letters (id int);
"""


def test_rates_are_per_second_over_the_window() -> None:
    rates = Rates()
    rates.add(Snapshot(produced=0, applied=0), now=100.0)
    snap = rates.add(Snapshot(produced=2000, applied=1000), now=102.0)
    assert (snap.produced_per_s, snap.applied_per_s) == (1000.0, 500.0)
    # Older samples leave the window: a pause shows as 0/s, not as a long average.
    rates.add(Snapshot(produced=2000, applied=1000), now=102.0 + RATE_WINDOW_S)
    snap = rates.add(Snapshot(produced=2000, applied=1000), now=103.0 + 2 * RATE_WINDOW_S)
    assert snap.produced_per_s == 0.0


async def test_committed_is_never_shown_ahead_of_produced(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database
) -> None:
    """The high watermark comes from a fetch that can trail the aggregator's commits."""
    await publish(kafka.bootstrap, topics.events, as_messages(generate(30)))
    newest = datetime.now(UTC) - timedelta(seconds=4)
    conn = await asyncpg.connect(database.dsn)
    try:
        await conn.execute(_TABLES)
        await conn.execute(
            "INSERT INTO session_metrics VALUES (5, $1), (7, $2)", newest, newest - timedelta(1)
        )
        # More than the topic holds: as if the aggregator were ahead of our fetches.
        await conn.execute(
            "INSERT INTO consumer_offsets VALUES ($1, $2, 0, 40)", topics.group, topics.events
        )
    finally:
        await conn.close()

    async with PipelineProgress(kafka.bootstrap, database.dsn, topics) as progress:
        snap = await progress.snapshot()

    assert snap.committed == 40
    assert snap.produced >= snap.committed
    assert snap.lag >= 0
    assert snap.applied == 12
    assert snap.sessions == 2
    assert snap.freshness_s is not None
    assert 4.0 <= snap.freshness_s < 60.0
