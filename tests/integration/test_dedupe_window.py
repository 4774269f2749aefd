"""The dedupe window, pinned at its edges: ids applied just inside it stay, just outside go.

Waiting out a retention of hours is not a test; the ids' ``applied_at`` is moved
back instead, to a few minutes either side of the edge. The margin is minutes
of a 30-hour window: wide enough for a loaded machine between the backdating
and the prune round, narrow enough that a window read in other units (30
minutes, 30 days) or a prune that deletes nothing fails here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from clickstream_aggregator.dedupe_window import DedupeWindow
from clickstream_aggregator.migrate import migrate
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_schema import ClickEvent
from support.aggregator import running_aggregator, settings_from_env, wait_applied
from support.feed import as_messages, generate, publish

pytestmark = pytest.mark.integration

RETENTION_HOURS = 30
MARGIN_MINUTES = 5
INSIDE = timedelta(hours=RETENTION_HOURS, minutes=-MARGIN_MINUTES)
OUTSIDE = timedelta(hours=RETENTION_HOURS, minutes=MARGIN_MINUTES)


async def _backdate(dsn: str, ids: Sequence[uuid.UUID], age: timedelta) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.execute(
            "UPDATE processed_events SET applied_at = now() - $2::interval "
            "WHERE event_id = ANY($1::uuid[])",
            list(ids),
            age,
        )
        assert status == f"UPDATE {len(ids)}"
    finally:
        await conn.close()


async def _remembered(dsn: str) -> set[uuid.UUID]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["event_id"] for r in await conn.fetch("SELECT event_id FROM processed_events")}
    finally:
        await conn.close()


async def _counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT session_id, total_events FROM session_metrics")
        return {r["session_id"]: r["total_events"] for r in rows}
    finally:
        await conn.close()


def _per_session(events: Sequence[ClickEvent]) -> Counter[str]:
    return Counter(e.session_id for e in events)


async def _pruned_again(
    logged: list[dict[str, Any]], rounds: int, task: asyncio.Task[None], timeout: float = 60.0
) -> list[int]:
    """Wait for ``rounds`` more prune rounds; return the rows each of them removed."""
    start = sum(e["event"] == "dedupe_pruned" for e in logged)
    deadline = time.monotonic() + timeout
    while True:
        rows = [e["rows"] for e in logged if e["event"] == "dedupe_pruned"][start:]
        if len(rows) >= rounds:
            return rows
        if task.done():
            task.result()
            raise AssertionError("the aggregator stopped before pruning")
        assert time.monotonic() < deadline, f"{rounds} prune rounds not logged in {timeout}s"
        await asyncio.sleep(0.05)


# Tansu only: the window lives in PostgreSQL; the broker only carries the re-sends,
# which the exactly-once tests in tests/real carry on Apache Kafka.
async def test_re_sends_inside_the_window_count_zero_times_and_ids_outside_it_are_forgotten(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    events = generate(900, seed=61)
    inside, outside, fresh = events[:300], events[300:600], events[600:]
    # The retention comes in as the variable an operator sets, through the settings.
    env = {
        **service_env,
        "AGGREGATOR_DEDUPE_RETENTION_HOURS": str(RETENTION_HOURS),
        "AGGREGATOR_PRUNE_INTERVAL_S": "0.2",
    }
    with capture_logs() as logged:
        async with running_aggregator(settings_from_env(env)) as task:
            await publish(kafka.bootstrap, topics.events, as_messages(events))
            await wait_applied(database.dsn, topics.group, topics.events, len(events), running=task)
            await _backdate(database.dsn, [e.event_id for e in inside], INSIDE)
            await _backdate(database.dsn, [e.event_id for e in outside], OUTSIDE)
            # A round running while the ids were backdated may not see them; the next one does.
            removed = await _pruned_again(logged, 2, task)
            assert sum(removed) == len(outside)
            assert await _remembered(database.dsn) == {e.event_id for e in [*inside, *fresh]}

            again = [*inside, *outside]
            await publish(kafka.bootstrap, topics.events, as_messages(again))
            await wait_applied(
                database.dsn, topics.group, topics.events, len(events) + len(again), running=task
            )
    # Re-sends of remembered ids count zero times; those of forgotten ids count
    # again (the documented limit of the window) and are remembered anew.
    assert await _counts(database.dsn) == dict(_per_session([*events, *outside]))
    assert await _remembered(database.dsn) == {e.event_id for e in events}


async def test_a_prune_round_removes_exactly_the_ids_applied_before_the_retention(
    database: Database,
) -> None:
    # Ages on both sides of the edge, and of the edges a misread unit would draw.
    ages = {
        timedelta(0): True,
        timedelta(minutes=RETENTION_HOURS - 1): True,
        timedelta(minutes=RETENTION_HOURS + 1): True,
        timedelta(hours=RETENTION_HOURS - 1): True,
        INSIDE: True,
        OUTSIDE: False,
        timedelta(hours=RETENTION_HOURS + 1): False,
        timedelta(days=RETENTION_HOURS): False,
    }
    ids = {age: sorted(uuid.uuid4() for _ in range(50)) for age in ages}
    pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            everything = sorted(i for group in ids.values() for i in group)
            # Remembered as a committed batch leaves them; the prune is what is under test.
            await conn.execute(
                "INSERT INTO processed_events (event_id, event_time)"
                " SELECT unnest($1::uuid[]), now()",
                everything,
            )
        for age, group in ids.items():
            await _backdate(database.dsn, group, age)
        window = DedupeWindow(pool, float(RETENTION_HOURS), interval_s=3600.0)
        first = await window.prune()
        second = await window.prune()
    finally:
        await pool.close()
    stale = [age for age, kept in ages.items() if not kept]
    assert first == sum(len(ids[age]) for age in stale)
    assert second == 0
    assert await _remembered(database.dsn) == {
        i for age, kept in ages.items() if kept for i in ids[age]
    }
