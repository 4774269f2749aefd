"""The producer against a real broker: what it sends is what the aggregator can read."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import structlog
from aiokafka import AIOKafkaConsumer

from clickstream_devstack.broker import EmbeddedKafka
from clickstream_devstack.environment import KafkaTopics
from clickstream_producer.generator import EventGenerator
from clickstream_producer.main import run
from clickstream_producer.settings import ProducerSettings
from clickstream_producer.wire import encode_record
from clickstream_runtime.settings import load
from clickstream_schema import decode

COUNT = 5000
Message = tuple[bytes, bytes]
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    return [(key, value) for _, key, value in await _consume_partitions(bootstrap, topic, count)]


async def _consume_partitions(
    bootstrap: str, topic: str, count: int
) -> list[tuple[int, bytes, bytes]]:
    """``(partition, key, value)`` of ``count`` messages, in offset order per partition."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    messages: list[tuple[int, bytes, bytes]] = []
    try:
        while len(messages) < count:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                messages.extend((r.partition, r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return messages


def _settings(kafka: EmbeddedKafka, topic: KafkaTopics, workers: int) -> ProducerSettings:
    return load(
        ProducerSettings,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_topic=topic.events,
        producer_events=COUNT,
        producer_rate=0,
        producer_seed=3,
        producer_users=300,
        producer_concurrent_sessions=100,
        producer_start=START,
        producer_batch_bytes=64 * 1024,
        producer_generator_workers=workers,
    )


async def _produce(kafka: EmbeddedKafka, topic: KafkaTopics, workers: int) -> list[Message]:
    await run(_settings(kafka, topic, workers), asyncio.Event())
    messages = await asyncio.wait_for(_consume(kafka.bootstrap, topic.events, COUNT), 120)
    assert len(messages) == COUNT
    events = [decode(value) for _, value in messages]
    assert all(
        key == event.session_id.encode() for (key, _), event in zip(messages, events, strict=True)
    )
    return messages


@pytest.mark.parametrize("workers", [0, 1])
async def test_produced_events_are_the_seeded_sequence_keyed_by_session(
    kafka: EmbeddedKafka, topic: KafkaTopics, workers: int
) -> None:
    messages = await _produce(kafka, topic, workers)
    # Exactly the seeded sequence, byte for byte (order differs across partitions).
    expected = EventGenerator(seed=3, users=300, concurrent_sessions=100, start=START)
    assert Counter(messages) == Counter(encode_record(r) for r in expected.next_records(COUNT))


async def test_several_generators_give_the_same_events_for_the_same_seed(
    kafka: EmbeddedKafka, make_topics: Callable[[], KafkaTopics]
) -> None:
    first, second = make_topics(), make_topics()
    runs = [await _produce(kafka, topics, 3) for topics in (first, second)]
    assert Counter(runs[0]) == Counter(runs[1])
    # Each generator has its own users; together they cover the configured count.
    users = {decode(value).user_id for _, value in runs[0]}
    assert 200 < len(users) <= 300
    # The generators' windows are merged by event time: each partition is in time order.
    by_partition: dict[int, list[datetime]] = {}
    for partition, _, value in await _consume_partitions(kafka.bootstrap, first.events, COUNT):
        by_partition.setdefault(partition, []).append(decode(value).timestamp)
    assert all(times == sorted(times) for times in by_partition.values())


async def test_stop_flushes_and_acknowledges_everything_sent(
    kafka: EmbeddedKafka, topic: KafkaTopics
) -> None:
    settings = load(
        ProducerSettings,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_topic=topic.events,
        producer_events=0,
        producer_rate=0,
        producer_seed=4,
        producer_users=300,
    )
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        producing = asyncio.create_task(run(settings, stop))
        # Some traffic arrived: now ask the endless producer to stop, as SIGTERM would.
        await asyncio.wait_for(_consume(kafka.bootstrap, topic.events, 2000), 120)
        stop.set()
        await asyncio.wait_for(producing, 120)
    finished = next(entry for entry in logs if entry["event"] == "finished")
    assert finished["events"] == finished["acked"] >= 2000
    everything = await asyncio.wait_for(
        _consume(kafka.bootstrap, topic.events, finished["events"]), 120
    )
    assert len(everything) == finished["events"]
