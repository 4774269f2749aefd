"""Property: whatever is on the topic, every message is applied once or dead-lettered
once, valid events are exact against the reference, and the replica never stops.

Each example is a fresh topic, consumer group and database with one real
aggregator loop. Its messages mix ordinary generated traffic with arbitrary
bytes, arbitrary JSON (deep nesting, huge and non-finite numbers, lone
surrogates), near misses (a valid event with one hostile field), re-sent
duplicates, and valid events of a few sessions with every field at its limits
(lengths, astral/combining/right-to-left text, prices, dates at the edges of the
range and odd offsets, coordinates at the poles and the date line).

An example costs one aggregator run (~6 s, mostly joining the group), so the
suite draws few examples of many messages each and does not shrink; a failure
prints the settled example instead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from clickstream_devstack.environment import Database, KafkaTopics, create_topics, service_env
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from support.aggregator import running_aggregator, settings_from_env, wait_applied
from support.feed import Message, as_messages, generate, publish, read_back
from support.hostile import extreme_messages, hostile_messages, session_keys
from support.reference import (
    differences,
    rows_of,
    settle,
    stored_dead_letters,
    stored_rows,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.one_broker("a long property run, once: on Apache Kafka where Java is present"),
    pytest.mark.timeout(900),
    # A failing example (hundreds of messages) is large to print; print it anyway.
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

PARTITIONS = 3
SESSIONS = session_keys(8)
ORDINARY = as_messages(generate(2_000, seed=31))

EXAMPLES = settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@st.composite
def topics_content(draw: st.DrawFn) -> list[Message]:
    """Ordinary traffic with hostile, extreme and duplicate messages spread through it."""
    start = draw(st.integers(0, len(ORDINARY) - 200))
    ordinary = ORDINARY[start : start + draw(st.integers(0, 200))]
    extreme = draw(st.lists(extreme_messages(SESSIONS), max_size=60))
    hostile = draw(st.lists(hostile_messages(), max_size=60))
    stream = list(ordinary)
    for message in extreme + hostile:
        stream.insert(draw(st.integers(0, len(stream))), message)
    if stream:
        for _ in range(draw(st.integers(0, 10))):
            # A re-delivery: the same bytes again, later in the stream.
            index = draw(st.integers(0, len(stream) - 1))
            stream.insert(draw(st.integers(index, len(stream))), stream[index])
    return stream


async def _check(
    kafka: EmbeddedKafka,
    topics: KafkaTopics,
    database: Database,
    env: dict[str, str],
    stream: list[Message],
) -> None:
    if stream:
        await publish(kafka.bootstrap, topics.events, stream)
    # Small batches: a topic's messages spread over several batches and fetches.
    # No decode worker process per example: batches this small are prepared
    # inline by the service anyway (workers.INLINE_BELOW).
    config = settings_from_env(env, aggregator_batch_max_records=50, aggregator_decode_workers=0)
    async with running_aggregator(config) as task:
        await wait_applied(database.dsn, topics.group, topics.events, len(stream), running=task)
        messages = await read_back(kafka.bootstrap, topics.events, topics.partitions)
        expected = settle(messages)
        dead = await stored_dead_letters(database.dsn, topics.events)
        stored = await stored_rows(database.dsn)
        await asyncio.sleep(0)
        assert not task.done(), "the aggregator stopped"

    reasons = Counter(expected.dead_letters.values())
    summary = (
        f"{len(messages)} messages: {len(expected.applied)} applied, "
        f"{len(expected.duplicates)} duplicates, dead letters {dict(reasons)}"
    )
    assert len(messages) == len(stream), summary
    assert dead == expected.dead_letters, summary
    # Applied once: each applied event is counted once in its session's row.
    assert differences(rows_of(expected.applied), stored) == [], summary


@EXAMPLES
@given(stream=topics_content())
def test_every_message_is_applied_once_or_dead_lettered_once(
    kafka: EmbeddedKafka, postgres: EmbeddedPostgres, stream: list[Message]
) -> None:
    topics = KafkaTopics.unique(prefix="hostile", partitions=PARTITIONS)
    create_topics(kafka, topics)
    name = f"hostile_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    database = Database.on(postgres, name)
    try:
        asyncio.run(_check(kafka, topics, database, service_env(kafka, topics, database), stream))
    finally:
        postgres.drop_database(name)
