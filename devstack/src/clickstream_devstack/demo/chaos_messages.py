"""What the chaos demo adds to the live traffic: duplicates, late events, malformed messages.

Duplicates and late events are made from events already on the topic (a
sample read from the partitions' starts): a duplicate is the same bytes again;
a late event is a new event (new ``event_id``) of an existing session, dated
hours before the session began. Malformed messages cover every reason a
message is refused, each keyed like a session so it lands on any partition.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from clickstream_schema import ClickEvent, InvalidEvent, decode, encode

Message = tuple[bytes | None, bytes | None]

#: The demo's message-size limit under --chaos, so that "oversize" is cheap to make.
CHAOS_MAX_MESSAGE_BYTES = 65_536


def malformed(event: ClickEvent) -> list[Message]:
    """One message for each way a message can be refused, built around a real event."""
    base = orjson.loads(encode(event)[1])
    key = f"chaos-poison-{uuid.uuid4().hex[:8]}".encode()

    def with_(**changes: object) -> bytes:
        return orjson.dumps({**base, **changes})

    missing = {k: v for k, v in base.items() if k != "user_agent"}
    values: list[bytes | None] = [
        None,  # a tombstone
        b"\xc3\x28 not utf-8",
        b'{"event_id": "truncated',
        b"[1, 2, 3]",
        with_(event_type="teleport"),
        with_(event_id="not-a-uuid"),
        with_(event_type="purchase", price=-5),
        orjson.dumps(missing),
        with_(timestamp="yesterday at noon"),
        with_(timestamp="2026-11-01T09:00:00"),  # no UTC offset
        with_(ip_address="999.1.1.1"),
        with_(unknown_field=True),
        with_(user_agent="x" * CHAOS_MAX_MESSAGE_BYTES),  # oversize
    ]
    return [(key, value) for value in values]


def late(event: ClickEvent, rng: random.Random) -> Message:
    """A new event of ``event``'s session, dated 2–6 hours before it."""
    earlier = event.model_copy(
        update={
            "event_id": uuid.UUID(int=rng.getrandbits(128)),
            "timestamp": event.timestamp - timedelta(hours=rng.randint(2, 6)),
        }
    )
    return encode(earlier)


async def sample(bootstrap: str, topic: str, partitions: int, limit: int) -> list[Message]:
    """Up to ``limit`` valid events from the start of the topic's partitions (2 s at most)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    found: list[Message] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 2.0
        while len(found) < limit and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=limit)
            for records in batch.values():
                found.extend(
                    (r.key, r.value) for r in records if r.value is not None and _valid(r.value)
                )
    finally:
        await consumer.stop()
    return found[:limit]


def _valid(value: bytes) -> bool:
    try:
        decode(value)
    except InvalidEvent:
        return False
    return True


async def publish(bootstrap: str, topic: str, messages: Sequence[Message]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=4 * CHAOS_MAX_MESSAGE_BYTES
    )
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()
