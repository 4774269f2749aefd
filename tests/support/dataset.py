"""A seeded traffic mix for the exactly-once suite: valid events plus what real
streams also carry: duplicates, poison messages, and late, out-of-order events."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

import orjson

from clickstream_schema import ClickEvent, encode
from support.feed import Message, generate

#: The aggregator's message-size limit in the suite (small, so "oversize" is cheap to make).
MAX_BYTES = 8192


@dataclass
class Dataset:
    messages: list[Message] = field(default_factory=list)
    #: value bytes of every message the aggregator must dead-letter
    poison: list[bytes | None] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0


def _poison_kinds(rng: random.Random, event: ClickEvent) -> list[bytes | None]:
    base = orjson.loads(encode(event)[1])

    def with_(**changes: object) -> bytes:
        return orjson.dumps({**base, **changes})

    missing = dict(base)
    del missing["user_agent"]
    last_field_bad = {**base, "geo": {**base.get("geo", {}), "location": {"lat": 123.0, "lon": 0}}}
    return [
        None,  # a tombstone: no value at all
        b"\xc3\x28 not utf-8",
        b'{"event_id": "truncated',
        b"[1, 2, 3]",
        b'"just a string"',
        with_(event_type="teleport"),
        with_(event_id="not-a-uuid"),
        with_(event_type="purchase", price=-5),
        orjson.dumps(missing),
        with_(timestamp="yesterday at noon"),
        with_(timestamp="2026-11-01T09:00:00"),  # no UTC offset
        orjson.dumps(last_field_bad),  # valid until the very last field
        with_(search_query="nul\u0000byte", event_type="search"),
        with_(user_agent="x" * MAX_BYTES),  # oversize
        with_(ip_address="999.1.1.1"),
    ]


def build(
    count: int,
    *,
    seed: int = 2024,
    dup_rate: float = 0.01,
    poison_rate: float = 0.005,
    late_sessions: int = 40,
) -> Dataset:
    rng = random.Random(seed)
    events = generate(count, seed=seed, users=5000, sessions=800)
    stream: list[tuple[bytes | None, bytes | None]] = [encode(e) for e in events]
    data = Dataset()

    # Late and out of order: a session's event that happened hours before the
    # session's first one, delivered at the end of the stream.
    sessions = sorted({e.session_id for e in events})
    for sid in rng.sample(sessions, late_sessions):
        first = next(e for e in events if e.session_id == sid)
        late = first.model_copy(
            update={
                "event_id": first.event_id.__class__(int=rng.getrandbits(128)),
                "timestamp": first.timestamp - timedelta(hours=rng.randint(2, 6)),
                "page_url": first.page_url + "#late",
            }
        )
        stream.append(encode(late))
        data.late += 1

    # Duplicates (same event_id): re-delivered soon, or much later in the stream.
    for _ in range(int(count * dup_rate)):
        original = events[rng.randrange(len(events))]
        position = rng.randrange(len(stream) + 1)
        stream.insert(max(position, 0), encode(original))
        data.duplicates += 1

    # Poison of every kind, spread through the stream.
    kinds_needed = int(count * poison_rate)
    while len(data.poison) < kinds_needed:
        for value in _poison_kinds(rng, events[rng.randrange(len(events))]):
            key = f"s-poison-{rng.getrandbits(32):08x}".encode()
            stream.insert(rng.randrange(len(stream) + 1), (key, value))
            data.poison.append(value)
    data.messages = stream
    return data
