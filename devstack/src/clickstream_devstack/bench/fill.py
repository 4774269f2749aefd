"""A topic with a chosen number of distinct sessions, for the memory-versus-sessions runs.

The producer's sessions average about a dozen events whatever its options
(``--users`` and ``--concurrent-sessions`` change who is active, not how long a
session is), so a million sessions would take ~12 M events. Here every run has
the same number of events spread over ``sessions`` ids instead, which isolates
the one variable: how many sessions the aggregator has seen. The messages are
one valid :class:`ClickEvent` rendered once, with the event id and session id
substituted per message, and the first one is checked with ``decode``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaProducer

from clickstream_schema import ClickEvent, DeviceType, EventType, decode, encode

log = structlog.get_logger()

_ID_HOLE: Final = uuid.UUID(int=0)
_SESSION_HOLE: Final = "bench-session-hole"


def _template(now: datetime) -> bytes:
    event = ClickEvent(
        event_id=_ID_HOLE,
        timestamp=now,
        user_id="bench-user",
        session_id=_SESSION_HOLE,
        event_type=EventType.PAGE_VIEW,
        page_url="https://shop.example/bench",
        user_agent="clickstream-bench",
        ip_address="192.0.2.1",  # pydantic parses the string
        device_type=DeviceType.DESKTOP,
        viewport_size="1920x1080",
    )
    _key, value = encode(event)
    # event_id comes before session_id in the model, so the holes fill in this order.
    return value.replace(str(_ID_HOLE).encode(), b"%s").replace(_SESSION_HOLE.encode(), b"%s")


def messages(
    events: int, sessions: int, partitions: int, *, now: datetime | None = None
) -> Iterator[tuple[int, bytes, bytes]]:
    """``(partition, key, value)`` for ``events`` events over ``sessions`` sessions, interleaved.

    A session's events all go to one partition (session number modulo the
    partitions), as keyed production would place them.
    """
    template = _template(now or datetime.now(UTC))
    base = uuid.uuid4().int & ~((1 << 64) - 1)  # fresh ids per run; the counter fills the low bits
    for n in range(events):
        session = n % sessions
        key = b"bench-s-%010d" % session
        event_id = str(uuid.UUID(int=base | n)).encode()
        yield session % partitions, key, template % (event_id, key)


async def fill(
    client_options: dict[str, Any], topic: str, partitions: int, *, events: int, sessions: int
) -> None:
    stream = messages(events, sessions, partitions)
    producer = AIOKafkaProducer(**client_options, acks="all", linger_ms=5, max_batch_size=1 << 19)
    await producer.start()
    try:
        builders = {p: producer.create_batch() for p in range(partitions)}
        pending = []
        for index, (partition, key, value) in enumerate(stream):
            if index == 0:
                checked = decode(value)  # a malformed template would only show as dead letters
                assert checked.session_id == key.decode()
            while builders[partition].append(key=key, value=value, timestamp=None) is None:
                pending.append(
                    await producer.send_batch(builders[partition], topic, partition=partition)
                )
                builders[partition] = producer.create_batch()
        for partition, builder in builders.items():
            if builder.record_count():
                pending.append(await producer.send_batch(builder, topic, partition=partition))
        for future in pending:
            await future  # acks=all: the topic is complete when this returns
    finally:
        await producer.stop()
    log.info("topic_filled", topic=topic, events=events, sessions=sessions)
