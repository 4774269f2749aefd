"""A seeded traffic mix for the exactly-once suite: valid events plus what real
streams also carry: duplicates, poison messages, late, out-of-order events, and
an abusive session (more searches than ``search_queries`` keeps).

Every poison value is one ``decode`` refuses at :data:`MAX_BYTES`, so the fault
suite's bookkeeping (poison = what decode refuses) holds; the unit test
``tests/unit/schema/test_dataset_poison.py`` checks that."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

import orjson

from clickstream_schema import ClickEvent, encode
from support.feed import Message, generate

#: The aggregator's message-size limit in the suite (small, so "oversize" is cheap to make).
MAX_BYTES = 8192
#: Searches of the abusive session: more than the 100 queries a session row keeps.
ABUSIVE_SEARCHES = 130


@dataclass
class Dataset:
    messages: list[Message] = field(default_factory=list)
    #: value bytes of every message the aggregator must dead-letter
    poison: list[bytes | None] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    abusive_searches: int = 0


def _poison_kinds(rng: random.Random, event: ClickEvent) -> list[bytes | None]:
    base = orjson.loads(encode(event)[1])

    def with_(**changes: object) -> bytes:
        return orjson.dumps({**base, **changes})

    def with_extra(fragment: bytes) -> bytes:
        return orjson.dumps(base)[:-1] + b',"extra":' + fragment + b"}"

    def with_raw_user_agent(fragment: bytes) -> bytes:
        # The user agent's JSON text replaced by bytes orjson would never write.
        body = orjson.dumps(base)
        old = b'"user_agent":' + orjson.dumps(base["user_agent"])
        assert old in body
        return body.replace(old, b'"user_agent":' + fragment, 1)

    missing = dict(base)
    del missing["user_agent"]
    last_field_bad = {**base, "geo": {**base.get("geo", {}), "location": {"lat": 123.0, "lon": 0}}}
    geo = base.get("geo") or {"country": "FI", "city": "Helsinki"}
    depth = rng.randint(1_000, 4_000)  # at most 8,000 bytes: under MAX_BYTES
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
        # Hostile input (issue 11): each of these once stopped a replica or a store.
        b"[" * depth + b"]" * depth,  # RecursionError in the old classifier
        with_extra(b"[" * 900 + b"]" * 900),
        with_(timestamp="9999-12-31T23:59:59-14:00"),  # year 10000 in UTC
        with_(timestamp="0001-01-01T00:00:00+14:00"),  # year 0 in UTC
        with_(timestamp=1_700_000_000_000),  # a Unix time, read differently by OpenSearch
        with_(timestamp="2026-11-01 09:00:00Z"),
        with_raw_user_agent(b'"\\ud800 lone surrogate"'),
        with_raw_user_agent(b"1" + b"0" * 5_000),  # beyond int max-str-digits
        with_(geo={**geo, "location": {"lat": 0, "lon": 0}}).replace(b'"lat":0', b'"lat":NaN'),
        with_(geo={**geo, "location": {"lat": "12.5", "lon": 0}}),
        with_(event_type="purchase", price="19.99"),
        with_(schema_version=True),
        with_(event_id="ABCDEF01" + str(event.event_id)[8:]),  # not canonical (upper case)
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

    # An abusive session: more searches than its row keeps (the first 100 are kept).
    template = next(e for e in events if e.event_type.value == "search")
    abusive = f"s-abusive-{rng.getrandbits(32):08x}"
    for i in range(ABUSIVE_SEARCHES):
        search = template.model_copy(
            update={
                "event_id": UUID(int=rng.getrandbits(128)),
                "session_id": abusive,
                "search_query": f"query {i:03d}",
                "timestamp": template.timestamp + timedelta(seconds=i),
            }
        )
        stream.insert(rng.randrange(len(stream) + 1), encode(search))
        data.abusive_searches += 1

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
