"""A message that kills the decode worker, end to end: pinned to it, never to the replica.

The real aggregator loop runs against the embedded broker and PostgreSQL with
one decode worker; ``support.crashing_workers`` makes worker processes die on
a marker in a message (or pause so the test can SIGKILL them), with the
product unchanged. Every message must end applied once (rows exact against
the reference) or dead-lettered once, and the replica must keep running.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clickstream_aggregator.crash_pinning import CRASHED_DECODER, DecodeWorkersFailed
from clickstream_aggregator.deadletters.copies import HEADER_REASON
from clickstream_aggregator.main import run
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_schema import ClickEvent, encode
from support.aggregator import (
    running_aggregator,
    settings_from_env,
    wait_applied,
    wait_relayed,
)
from support.crashing_workers import KILL, PAUSE, WorkerHooks, install
from support.feed import Message, as_messages, generate, publish, read_all, read_back
from support.reference import differences, rows_of, settle, stored_dead_letters, stored_rows

pytestmark = pytest.mark.integration

Position = tuple[int, int]


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WorkerHooks:
    return install(tmp_path / "hooks", monkeypatch)


def _marked(event: ClickEvent, marker: str) -> Message:
    """A valid event carrying ``marker`` (to the reference, an event like any other)."""
    return encode(event.model_copy(update={"user_agent": f"Mozilla/5.0 {marker}"}))


async def _apply(
    kafka: EmbeddedKafka,
    topics: KafkaTopics,
    database: Database,
    env: dict[str, str],
    messages: list[Message],
    *,
    while_running: WorkerHooks | None = None,
) -> None:
    """Publish and apply everything with one replica; it must still be running."""
    await publish(kafka.bootstrap, topics.events, messages)
    async with running_aggregator(settings_from_env(env, aggregator_decode_workers=1)) as task:
        if while_running is not None:
            await asyncio.to_thread(while_running.kill_paused)
        await wait_applied(database.dsn, topics.group, topics.events, len(messages), running=task)
        await wait_relayed(database.dsn, running=task)
        await asyncio.sleep(0)  # let a failure that raced the last commit surface
        assert not task.done(), "the aggregator stopped"


async def _position_of(kafka: EmbeddedKafka, topics: KafkaTopics, marker: str) -> Position:
    messages = await read_back(kafka.bootstrap, topics.events, topics.partitions)
    found = [(p, o) for p, o, _k, v in messages if v is not None and marker.encode() in v]
    assert len(found) == 1
    return found[0]


async def _assert_settled(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, crashed: set[Position]
) -> None:
    """Every message applied once or dead-lettered once; ``crashed`` as ``crashed_decoder``."""
    messages = await read_back(kafka.bootstrap, topics.events, topics.partitions)
    expected = settle(m for m in messages if (m[0], m[1]) not in crashed)
    expected.dead_letters.update(dict.fromkeys(crashed, CRASHED_DECODER))
    assert await stored_dead_letters(database.dsn, topics.events) == expected.dead_letters
    assert differences(rows_of(expected.applied), await stored_rows(database.dsn)) == []


async def _dead_letter_copies(kafka: EmbeddedKafka, topics: KafkaTopics) -> list[bytes]:
    """The reason headers of the committed copies on the dead-letter topic."""
    copies = await read_all(kafka.bootstrap, topics.dlq, topics.partitions)
    return sorted(headers[HEADER_REASON] for _p, _o, headers, _k, _v in copies)


async def test_a_message_that_kills_the_decode_worker_is_dead_lettered_once_and_the_rest_applied(
    kafka: EmbeddedKafka,
    topics: KafkaTopics,
    database: Database,
    service_env: dict[str, str],
    hooks: WorkerHooks,
) -> None:
    events = generate(3_000, seed=71)
    messages = as_messages(events)
    messages[1_700] = _marked(events[1_700], KILL)
    messages.insert(900, (b"not-json", b"{oops"))

    await _apply(kafka, topics, database, service_env, messages)

    killer = await _position_of(kafka, topics, KILL)
    await _assert_settled(kafka, topics, database, {killer})
    assert await _dead_letter_copies(kafka, topics) == [
        CRASHED_DECODER.encode(),
        b"not_json",
    ]


async def test_a_worker_killed_from_outside_mid_batch_is_replaced_and_nothing_dead_lettered(
    kafka: EmbeddedKafka,
    topics: KafkaTopics,
    database: Database,
    service_env: dict[str, str],
    hooks: WorkerHooks,
) -> None:
    events = generate(2_500, seed=72)
    messages = as_messages(events)
    messages[1_200] = _marked(events[1_200], PAUSE)

    await _apply(kafka, topics, database, service_env, messages, while_running=hooks)

    await _assert_settled(kafka, topics, database, set())
    assert await stored_dead_letters(database.dsn, topics.events) == {}


async def test_decode_workers_that_cannot_start_stop_the_service_with_the_reason(
    topics: KafkaTopics, database: Database, service_env: dict[str, str], hooks: WorkerHooks
) -> None:
    hooks.fail_starts()
    settings = settings_from_env(service_env, aggregator_decode_workers=1)
    with pytest.raises(DecodeWorkersFailed, match="cannot start"):
        await asyncio.wait_for(run(settings, asyncio.Event()), timeout=60)
