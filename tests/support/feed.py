"""Put test traffic on a topic and read it back in consumption order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from clickstream_producer.generator import EventGenerator
from clickstream_schema import ClickEvent, InvalidEvent, decode, encode
from support.topic_reader import read_topic

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

Message = tuple[bytes | None, bytes | None]


def generate(
    count: int, *, seed: int = 7, users: int = 2000, sessions: int = 500
) -> list[ClickEvent]:
    return EventGenerator(
        seed=seed, users=users, concurrent_sessions=sessions, start=START
    ).next_batch(count)


def as_messages(events: Sequence[ClickEvent]) -> list[Message]:
    return [encode(e) for e in events]


async def publish(
    bootstrap: str, topic: str, messages: Sequence[Message], *, idempotent: bool = False
) -> None:
    """Send ``messages`` (``acks=all``) and wait for every acknowledgement; ``idempotent``
    as production writes to Apache Kafka (a broker without idempotence refuses it)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=idempotent,
        linger_ms=20,
        max_batch_size=1 << 20,
        acks="all",
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_back(
    bootstrap: str, topic: str, partitions: int
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every message as (partition, offset, key, value), partition by partition in offset
    order (``read_committed``: copies of aborted transactions, where the broker has them,
    are not there)."""
    return [
        (r.partition, r.offset, r.key, r.value)
        for r in await read_topic(bootstrap, topic, partitions)
    ]


def valid_events(
    messages: Sequence[tuple[int, int, bytes | None, bytes | None]],
) -> list[ClickEvent]:
    events = []
    for _p, _o, _k, value in messages:
        try:
            events.append(decode(value))
        except InvalidEvent:
            continue
    return events


async def read_all(
    bootstrap: str, topic: str, partitions: int
) -> list[tuple[int, int, dict[str, bytes], bytes | None, bytes | None]]:
    """Every committed message of a topic with its headers: (partition, offset, headers, key,
    value), in (partition, offset) order.

    Read ``read_committed``, as the dead-letter topic's contract asks its readers to:
    a relay round Kafka refused part of is aborted as a whole and sent again, so the
    log keeps copies of aborted rounds that a ``read_uncommitted`` reader would see.
    """
    records = await read_topic(bootstrap, topic, partitions)
    return [(r.partition, r.offset, r.headers, r.key, r.value) for r in records]
