"""The aggregator end to end: real broker, real PostgreSQL, the real service loop."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from structlog.testing import capture_logs
from structlog.typing import EventDict, WrappedLogger

from clickstream_aggregator.main import run
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from support.aggregator import applied_offsets, running_aggregator, settings_from_env, wait_applied
from support.feed import as_messages, generate, publish, read_back, valid_events
from support.reference import differences, expected_rows, stored_rows


async def _reference(kafka: EmbeddedKafka, topics: KafkaTopics) -> dict[str, dict[str, object]]:
    messages = await read_back(kafka.bootstrap, topics.events, topics.partitions)
    return expected_rows(valid_events(messages))


@pytest.mark.one_broker("a long run, once: on Apache Kafka where Java is present")
async def test_every_session_row_equals_the_reference(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    events = generate(50_000)
    await publish(kafka.bootstrap, topics.events, as_messages(events))

    async with running_aggregator(settings_from_env(service_env)) as task:
        await wait_applied(database.dsn, topics.group, topics.events, len(events), running=task)

    expected = await _reference(kafka, topics)
    stored = await stored_rows(database.dsn)
    assert len(stored) == len({e.session_id for e in events})
    assert differences(expected, stored) == []
    assert sum(r["total_events"] for r in stored.values()) == len(events)


@pytest.mark.one_broker("a long run, once: on Apache Kafka where Java is present")
async def test_stop_and_restart_midway_gives_the_same_result(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    events = generate(30_000, seed=11)
    await publish(kafka.bootstrap, topics.events, as_messages(events))
    # Small batches, and the first run stopped from inside at its tenth commit: it
    # stops with work left to do however fast the machine applies (a poll of the
    # stored offsets, from outside, could come after the last batch).
    settings = settings_from_env(service_env, aggregator_batch_max_records=500)
    stop = asyncio.Event()
    commits = 0

    def stop_at_the_tenth_commit(
        _logger: WrappedLogger, _method: str, event_dict: EventDict
    ) -> EventDict:
        nonlocal commits
        if event_dict.get("event") == "batch_committed":
            commits += 1
            if commits == 10:
                stop.set()
        return event_dict

    with capture_logs(processors=[stop_at_the_tenth_commit]):
        await asyncio.wait_for(run(settings, stop), timeout=120)
    first = await applied_offsets(database.dsn, topics.group, topics.events)
    assert 0 < first < len(events)

    async with running_aggregator(settings) as task:
        await wait_applied(database.dsn, topics.group, topics.events, len(events), running=task)

    assert differences(await _reference(kafka, topics), await stored_rows(database.dsn)) == []


async def test_invalid_messages_are_dead_lettered_with_their_reason(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    good = as_messages(generate(200, seed=3))
    bad: list[tuple[bytes | None, bytes | None]] = [
        (b"k1", b"\xff\xfe not utf-8"),
        (b"k2", b"{not json"),
        (b"k3", b"[1, 2, 3]"),
        (b"k4", b'{"event_type": "page_view"}'),
    ]
    await publish(kafka.bootstrap, topics.events, good + bad)

    async with running_aggregator(settings_from_env(service_env)) as task:
        await wait_applied(
            database.dsn, topics.group, topics.events, len(good) + len(bad), running=task
        )

    conn = await asyncpg.connect(database.dsn)
    try:
        rows = await conn.fetch("SELECT message_key, reason FROM dead_letters ORDER BY message_key")
    finally:
        await conn.close()
    assert [(r["message_key"], r["reason"]) for r in rows] == [
        (b"k1", "not_utf8"),
        (b"k2", "not_json"),
        (b"k3", "not_object"),
        (b"k4", "schema"),
    ]
