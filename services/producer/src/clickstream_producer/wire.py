"""Generated events before they become models, and their byte-exact wire encoding.

The hot path never builds a :class:`ClickEvent`: constructing and serialising the
pydantic model costs ~20 µs per event on the 2-core reference machine, which alone
caps a producer below the 50 000 events/s target. :func:`encode_record` writes the
very bytes ``clickstream_schema.encode(record.to_event())`` would produce (same
key order, ``exclude_none``, UTC as ``Z``, prices as JSON numbers) from fragments
precomputed per session; the unit tests compare both encodings byte for byte, and
``run`` re-checks the first batch at start-up so a contract change cannot drift
silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Final, NamedTuple
from uuid import UUID

import orjson

from clickstream_producer.catalog import Location
from clickstream_producer.population import User
from clickstream_schema import ClickEvent, EventType, encode

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TYPE_BYTES: Final = {member: member.value.encode() for member in EventType}
_VERSION_7: Final = 0x7 << 76
_VARIANT: Final = 0b10 << 62
_RAND_B: Final = (1 << 62) - 1
_LOW_48: Final = (1 << 48) - 1


def uuid7_int(time_ms: int, random_bits: int) -> int:
    """A UUIDv7 (RFC 9562) as an int: 48-bit ms time, version, 74 random bits, variant."""
    rand_a = (random_bits >> 62) & 0xFFF
    return (time_ms << 80) | _VERSION_7 | (rand_a << 64) | _VARIANT | (random_bits & _RAND_B)


def uuid7_bytes(time_ms: int, random_bits: int) -> bytes:
    """``str(UUID(int=uuid7_int(...)))`` without building the int or the UUID."""
    return b"%08x-%04x-7%03x-%04x-%012x" % (
        time_ms >> 16,
        time_ms & 0xFFFF,
        (random_bits >> 62) & 0xFFF,
        0x8000 | ((random_bits >> 48) & 0x3FFF),
        random_bits & _LOW_48,
    )


@lru_cache(maxsize=4096)
def _json_string(text: str) -> bytes:
    # Element ids, queries and referrers come from small finite sets: escape each once.
    return orjson.dumps(text)


@lru_cache(maxsize=4096)
def _price_json(price: Decimal) -> bytes:
    # The contract serialises prices as float(Decimal); orjson prints the same shortest repr.
    return orjson.dumps(float(price))


@lru_cache(maxsize=4096)
def _second_prefix(epoch_second: int) -> bytes:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_second)).encode()


def timestamp_bytes(time_ms: int) -> bytes:
    """ISO 8601 in UTC exactly as pydantic renders it (no fraction when it is zero)."""
    second, millis = divmod(time_ms, 1000)
    if millis:
        return b"%s.%03d000Z" % (_second_prefix(second), millis)
    return _second_prefix(second) + b"Z"


@lru_cache(maxsize=65536)
def _user_fragments(user: User) -> tuple[bytes, bytes]:
    """(client fields after the referrer, tail from viewport to the end): fixed per user."""
    geo = user.geo
    location = {"lat": geo.location.lat, "lon": geo.location.lon}
    client = b',"user_agent":%s,"ip_address":"%s","device_type":"%s"' % (
        orjson.dumps(user.user_agent),
        str(user.ip_address).encode(),
        user.device.value.encode(),
    )
    tail = b',"viewport_size":%s,"geo":%s}' % (
        orjson.dumps(user.viewport),
        orjson.dumps({"country": geo.country, "city": geo.city, "location": location}),
    )
    return client, tail


class Step(NamedTuple):
    """One planned event of a session, before it has a time and an id."""

    delay_ms: int
    event_type: EventType
    location: Location
    element_id: str | None = None
    price: Decimal | None = None
    search_query: str | None = None


@dataclass(slots=True)
class Visit:
    """A session's identity: what every one of its events repeats, pre-rendered."""

    session_id: str
    user: User
    referrer: str | None
    key: bytes = field(init=False)
    head: bytes = field(init=False, repr=False)
    client: bytes = field(init=False, repr=False)
    tail: bytes = field(init=False, repr=False)

    @classmethod
    def unrendered(cls, session_id: str, user: User, referrer: str | None) -> Visit:
        """A visit whose events are never encoded (a warm-up session): no wire fragments."""
        visit = object.__new__(cls)
        visit.session_id, visit.user, visit.referrer = session_id, user, referrer
        return visit

    def __post_init__(self) -> None:
        self.key = self.session_id.encode()
        self.head = b'"user_id":%s,"session_id":"%s","event_type":"' % (
            _json_string(self.user.user_id),
            self.key,
        )
        client, self.tail = _user_fragments(self.user)
        if self.referrer is not None:
            client = b',"referrer":%s%s' % (_json_string(self.referrer), client)
        self.client = client


class EventRecord(NamedTuple):
    time_ms: int
    #: The 74 random bits of the UUIDv7 event id.
    random_bits: int
    visit: Visit
    step: Step

    @property
    def event_id(self) -> UUID:
        return UUID(int=uuid7_int(self.time_ms, self.random_bits))

    def to_event(self) -> ClickEvent:
        """The validated contract model of this record."""
        step, visit, user = self.step, self.visit, self.visit.user
        return ClickEvent(
            event_id=self.event_id,
            timestamp=_EPOCH + timedelta(milliseconds=self.time_ms),
            user_id=user.user_id,
            session_id=visit.session_id,
            event_type=step.event_type,
            page_url=step.location.url,
            referrer=visit.referrer,
            user_agent=user.user_agent,
            ip_address=str(user.ip_address),
            device_type=user.device,
            product_id=step.location.product_id,
            product_category=step.location.category,
            price=step.price,
            search_query=step.search_query,
            element_id=step.element_id,
            viewport_size=user.viewport,
            geo=user.geo,
        )


def encode_record(record: EventRecord) -> tuple[bytes, bytes]:
    """The Kafka ``(key, value)`` that ``clickstream_schema.encode`` gives for this record."""
    time_ms, bits, visit, step = record
    extras = b""
    if step.price is not None:
        extras = b',"price":' + _price_json(step.price)
    if step.search_query is not None:
        extras += b',"search_query":' + _json_string(step.search_query)
    if step.element_id is not None:
        extras += b',"element_id":' + _json_string(step.element_id)
    location = step.location
    value = b'{"event_id":"%s","schema_version":1,"timestamp":"%s",%s%s","page_url":%s%s%s%s%s' % (
        uuid7_bytes(time_ms, bits),
        timestamp_bytes(time_ms),
        visit.head,
        _TYPE_BYTES[step.event_type],
        location.url_json,
        visit.client,
        location.context_json,
        extras,
        visit.tail,
    )
    return visit.key, value


def check_matches_contract(records: list[EventRecord]) -> None:
    """Raise if the fast encoding differs from ``clickstream_schema.encode`` for any record."""
    for record in records:
        expected = encode(record.to_event())
        if encode_record(record) != expected:
            raise RuntimeError(
                "wire encoding drifted from clickstream_schema.encode: "
                f"expected {expected[1]!r}, got {encode_record(record)[1]!r}"
            )
