"""What the aggregator does when a message, a clock or a server misbehaves.

Each test names the failure it shows handled; each fails on the code before
the fix (pinning, dedupe by applied time, lost COMMIT replies, out-of-range
offsets, start-up waits).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from clickstream_aggregator.batch import Batch
from clickstream_aggregator.main import run
from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.positions import OffsetOutOfRange
from clickstream_aggregator.records import RawPartition
from clickstream_aggregator.startup import StartupTimeout
from clickstream_aggregator.transaction import BatchTransaction, Committed
from clickstream_aggregator.workers import Preparer
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.ports import free_port
from clickstream_schema import ClickEvent, EventType, encode
from support.aggregator import (
    applied_offsets,
    claimed_pool,
    running_aggregator,
    settings_from_env,
    wait_applied,
)
from support.database import fetch
from support.dataset import MAX_BYTES, build
from support.feed import as_messages, generate, publish

pytestmark = pytest.mark.integration

MAX_REVENUE = Decimal("999999999999.99")  # NUMERIC(14,2)


def _purchase_of(session: str, events: list[ClickEvent]) -> ClickEvent:
    template = next(e for e in events if e.session_id == session)
    return template.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "event_type": EventType.PURCHASE,
            "price": Decimal("25.00"),
            "product_id": "p-1",
            "timestamp": template.timestamp + timedelta(seconds=1),
        }
    )


async def test_a_purchase_postgresql_cannot_add_is_dead_lettered_and_the_batch_commits(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    events = generate(2_000, seed=21)
    victim = events[0].session_id
    # The session's stored revenue sits at the column's maximum: one more cent overflows.
    async with running_aggregator(settings_from_env(service_env)) as task:
        await publish(kafka.bootstrap, topics.events, as_messages(events))
        await wait_applied(database.dsn, topics.group, topics.events, len(events), running=task)
    await fetch(
        database.dsn,
        "UPDATE session_metrics SET total_revenue = $2 WHERE session_id = $1",
        victim,
        MAX_REVENUE,
    )
    before = {
        r["session_id"]: r["total_events"]
        for r in await fetch(database.dsn, "SELECT session_id, total_events FROM session_metrics")
    }
    overflow = _purchase_of(victim, events)
    more = generate(500, seed=22)
    messages = [*as_messages(more[:250]), encode(overflow), *as_messages(more[250:])]

    async with running_aggregator(settings_from_env(service_env)) as task:
        await publish(kafka.bootstrap, topics.events, messages)
        await wait_applied(
            database.dsn, topics.group, topics.events, len(events) + len(messages), running=task
        )
        assert not task.done()

    letters = await fetch(database.dsn, "SELECT reason, message_value FROM dead_letters")
    assert [(r["reason"], r["message_value"]) for r in letters] == [
        ("unstorable", encode(overflow)[1])
    ]
    rows = {
        r["session_id"]: r
        for r in await fetch(
            database.dsn, "SELECT session_id, total_events, total_revenue FROM session_metrics"
        )
    }
    assert rows[victim]["total_revenue"] == MAX_REVENUE
    assert rows[victim]["total_events"] == before[victim]
    assert sum(r["total_events"] for r in rows.values()) == len(events) + len(more)
    # Not applied, so not remembered: the dedupe table does not hold its id.
    found = await fetch(
        database.dsn, "SELECT 1 FROM processed_events WHERE event_id = $1", overflow.event_id
    )
    assert found == []


async def _logged_again(
    logged: list[dict[str, Any]],
    event: str,
    times: int,
    task: asyncio.Task[None],
    timeout: float = 60.0,
) -> None:
    """Wait until ``event`` is logged ``times`` more times (fails fast if the service died)."""
    before = sum(e["event"] == event for e in logged)
    deadline = time.monotonic() + timeout
    while sum(e["event"] == event for e in logged) < before + times:
        if task.done():
            task.result()
            raise AssertionError(f"the aggregator stopped before logging {event}")
        assert time.monotonic() < deadline, f"{event} not logged {times} more times in {timeout}s"
        await asyncio.sleep(0.05)


async def test_a_device_clock_days_ahead_does_not_forget_ids_duplicates_need(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    events = generate(1_000, seed=31)
    ahead = events[-1].model_copy(
        update={
            "event_id": uuid.uuid4(),
            "timestamp": events[-1].timestamp + timedelta(days=3),
        }
    )
    settings = settings_from_env(
        service_env, aggregator_prune_interval_s=0.2, aggregator_dedupe_retention_hours=24.0
    )
    with capture_logs() as logged:
        async with running_aggregator(settings) as task:
            await publish(kafka.bootstrap, topics.events, as_messages([*events, ahead]))
            await wait_applied(
                database.dsn, topics.group, topics.events, len(events) + 1, running=task
            )
            # Several prune rounds run after everything was applied (waited for, not
            # slept for: a slow machine must not skip them); then the earlier events again.
            await _logged_again(logged, "dedupe_pruned", 2, task)
            await publish(kafka.bootstrap, topics.events, as_messages(events[:100]))
            await wait_applied(
                database.dsn, topics.group, topics.events, len(events) + 101, running=task
            )
    total = await fetch(database.dsn, "SELECT sum(total_events) AS n FROM session_metrics")
    assert total[0]["n"] == len(events) + 1
    remembered = await fetch(database.dsn, "SELECT count(*) AS n FROM processed_events")
    assert remembered[0]["n"] == len(events) + 1


async def test_a_batch_whose_commit_reply_was_lost_counts_as_committed(
    topics: KafkaTopics, database: Database
) -> None:
    events = generate(300, seed=41)
    messages = as_messages(events)
    raw = RawPartition(
        0,
        list(range(len(messages))),
        [k for k, _ in messages],
        [v for _, v in messages],
        [0] * len(messages),
    )
    async with claimed_pool(database.dsn, topics.group, topics.events) as pool:
        transaction = BatchTransaction(pool, topics.group, 1 << 20)
        async with Preparer(topics.events, max_bytes=1 << 20, workers=0) as preparer:
            ready = await preparer.prepare(Batch(topics.events, {0: raw}))
        first = await transaction.attempt(ready, {0: 1})
        # The same batch again, as a retry after a connection lost during COMMIT does it.
        again = await transaction.attempt(ready, {0: 1})
    assert isinstance(first, Committed)
    assert not first.replayed
    assert isinstance(again, Committed)
    assert again.replayed
    assert again.events == first.events == len(events)
    total = await fetch(database.dsn, "SELECT sum(total_events) AS n FROM session_metrics")
    assert total[0]["n"] == len(events)


async def test_a_stored_offset_beyond_the_log_end_stops_with_the_reason(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    await publish(kafka.bootstrap, topics.events, as_messages(generate(50, seed=51)))
    conn = await asyncpg.connect(database.dsn)
    try:
        await migrate(conn)
        # As if the topic had been recreated after 100k messages were applied.
        await conn.execute(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, epoch) "
            "SELECT $1, $2, p, 100000, 1 FROM generate_series(0, $3 - 1) AS p",
            topics.group,
            topics.events,
            topics.partitions,
        )
    finally:
        await conn.close()
    stop = asyncio.Event()
    # Doubted for a second (a high watermark may trail), then the leader confirms.
    settings = settings_from_env(service_env, aggregator_log_end_wait_s=1.0)
    with pytest.raises(OffsetOutOfRange, match=r"beyond the log end \d+: the topic was recreated"):
        await asyncio.wait_for(run(settings, stop), timeout=60)


async def test_kafka_unreachable_at_start_is_waited_for_then_given_up_in_one_line(
    database: Database, service_env: dict[str, str]
) -> None:
    env = {**service_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    settings = settings_from_env(
        env, aggregator_startup_timeout_s=1.5, aggregator_retry_initial_s=0.1, metrics_port=0
    )
    started = time.monotonic()
    with pytest.raises(StartupTimeout, match=r"did not answer within 1\.5s") as failure:
        await asyncio.wait_for(run(settings, asyncio.Event()), timeout=30)
    assert "\n" not in str(failure.value)
    assert time.monotonic() - started < 20


async def test_stop_while_waiting_for_kafka_returns_promptly(
    database: Database, service_env: dict[str, str]
) -> None:
    env = {**service_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    stop = asyncio.Event()
    with capture_logs() as logged:
        task = asyncio.create_task(run(settings_from_env(env, metrics_port=0), stop))
        # Waiting for Kafka (a failed attempt logged, more to come), not merely slow to start.
        await _logged_again(logged, "kafka_connect_retry", 1, task)
        assert not task.done()
        stop.set()
        # Well inside the 10 s SIGTERM bound (README), even on a loaded machine.
        await asyncio.wait_for(task, timeout=8)


async def test_its_postgresql_sessions_terminated_at_any_moment_never_stop_it(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    """An administrator (or a failover) ends the replica's sessions again and again,
    in the middle of batches, relay rounds, probes and prunes: every one is an
    outage to retry, never a reason to stop, and the counts stay exact."""
    data = build(20_000, seed=53, late_sessions=0)
    settings = settings_from_env(
        service_env,
        aggregator_max_message_bytes=MAX_BYTES,
        aggregator_batch_max_records=500,
        aggregator_prune_interval_s=0.2,
        aggregator_retry_initial_s=0.01,
        aggregator_retry_max_s=0.1,
    )
    rng = random.Random(53)
    admin = await asyncpg.connect(database.dsn)
    terminated = 0
    try:
        async with running_aggregator(settings) as task:
            await publish(kafka.bootstrap, topics.events, data.messages)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 180
            # Sessions (busy or idle in the pool) ended at irregular moments, 150 times
            # at least and until every message is applied...
            rounds = 0
            while rounds < 150 or await applied_offsets(
                database.dsn, topics.group, topics.events
            ) < len(data.messages):
                rounds += 1
                assert not task.done(), f"the aggregator stopped: {task.exception()!r}"
                assert loop.time() < deadline, "not applied in 180 s"
                terminated += await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name LIKE 'clickstream-aggregator/%'"
                )
                # Irregular gaps, some long enough for a batch to commit in between.
                await asyncio.sleep(rng.choice((0.01, 0.05, 0.2)))
            # ...then left alone: the relay's rounds (Kafka I/O inside a transaction)
            # are longer than those gaps, and must still end with every copy sent.
            while await _pending_dead_letters(admin):
                assert not task.done(), f"the aggregator stopped: {task.exception()!r}"
                assert loop.time() < deadline, "dead letters not relayed in 180 s"
                await asyncio.sleep(0.1)
            assert not task.done()
        # running_aggregator stopped it; a failure would have been raised on exit.
        rows = await admin.fetchrow(
            "SELECT sum(total_events) AS events, count(*) AS sessions FROM session_metrics"
        )
        dead = await admin.fetchval("SELECT count(*) FROM dead_letters")
    finally:
        await admin.close()
    valid = len(data.messages) - len(data.poison) - data.duplicates
    assert terminated > 0, "no session was ever caught busy: the test showed nothing"
    assert rows["events"] == valid
    assert dead == len(data.poison)


async def _pending_dead_letters(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM dead_letters WHERE relayed_at IS NULL"))
