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

from clickstream_producer.catalog import Product
from clickstream_producer.population import User
from clickstream_schema import ClickEvent, EventType, encode

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TYPE_BYTES: Final = {member: member.value.encode() for member in EventType}


@lru_cache(maxsize=16384)
def _json_string(text: str) -> bytes:
    # URLs, element ids and queries come from small finite sets: escape each once.
    return orjson.dumps(text)


@lru_cache(maxsize=4096)
def _second_prefix(epoch_second: int) -> bytes:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_second)).encode()


def timestamp_bytes(time_ms: int) -> bytes:
    """ISO 8601 in UTC exactly as pydantic renders it (no fraction when it is zero)."""
    second, millis = divmod(time_ms, 1000)
    if millis:
        return b"%s.%03d000Z" % (_second_prefix(second), millis)
    return _second_prefix(second) + b"Z"


def uuid_bytes(value: int) -> bytes:
    h = b"%032x" % value
    return b"%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


class Step(NamedTuple):
    """One planned event of a session, before it has a time and an id."""

    delay_ms: int
    event_type: EventType
    page_url: str
    element_id: str | None = None
    product: Product | None = None
    category: str | None = None
    price: Decimal | None = None
    search_query: str | None = None


@dataclass(slots=True)
class Visit:
    """A session's identity; what every one of its events repeats."""

    session_id: str
    user: User
    referrer: str | None
    key: bytes = field(init=False)
    who_bytes: bytes = field(init=False, repr=False)
    client_bytes: bytes = field(init=False, repr=False)
    tail_bytes: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        user = self.user
        self.key = self.session_id.encode()
        self.who_bytes = b'"user_id":%s,"session_id":%s,"event_type":"' % (
            _json_string(user.user_id),
            _json_string(self.session_id),
        )
        referrer = b',"referrer":%s' % orjson.dumps(self.referrer) if self.referrer else b""
        self.client_bytes = b'%s,"user_agent":%s,"ip_address":"%s","device_type":"%s"' % (
            referrer,
            orjson.dumps(user.user_agent),
            str(user.ip_address).encode(),
            user.device.value.encode(),
        )
        geo = user.geo
        location = {"lat": geo.location.lat, "lon": geo.location.lon}
        self.tail_bytes = b',"viewport_size":%s,"geo":%s}' % (
            orjson.dumps(user.viewport),
            orjson.dumps({"country": geo.country, "city": geo.city, "location": location}),
        )


class EventRecord(NamedTuple):
    time_ms: int
    event_id: int
    visit: Visit
    step: Step

    def to_event(self) -> ClickEvent:
        """The validated contract model of this record."""
        step, visit, user = self.step, self.visit, self.visit.user
        product = step.product
        return ClickEvent(
            event_id=UUID(int=self.event_id),
            timestamp=_EPOCH + timedelta(milliseconds=self.time_ms),
            user_id=user.user_id,
            session_id=visit.session_id,
            event_type=step.event_type,
            page_url=step.page_url,
            referrer=visit.referrer,
            user_agent=user.user_agent,
            ip_address=user.ip_address,
            device_type=user.device,
            product_id=product.product_id if product else None,
            product_category=product.category.slug if product else step.category,
            price=step.price,
            search_query=step.search_query,
            element_id=step.element_id,
            viewport_size=user.viewport,
            geo=user.geo,
        )


def encode_record(record: EventRecord) -> tuple[bytes, bytes]:
    """The Kafka ``(key, value)`` that ``clickstream_schema.encode`` gives for this record."""
    step, visit = record.step, record.visit
    extras = b""
    product = step.product
    if product is not None:
        extras = b',"product_id":"%s","product_category":%s' % (
            product.product_id.encode(),
            _json_string(product.category.slug),
        )
    elif step.category is not None:
        extras = b',"product_category":%s' % _json_string(step.category)
    if step.price is not None:
        extras += b',"price":%s' % orjson.dumps(float(step.price))
    if step.search_query is not None:
        extras += b',"search_query":%s' % _json_string(step.search_query)
    if step.element_id is not None:
        extras += b',"element_id":%s' % _json_string(step.element_id)
    value = b'{"event_id":"%s","schema_version":1,"timestamp":"%s",%s%s","page_url":%s%s%s%s' % (
        uuid_bytes(record.event_id),
        timestamp_bytes(record.time_ms),
        visit.who_bytes,
        _TYPE_BYTES[step.event_type],
        _json_string(step.page_url),
        visit.client_bytes,
        extras,
        visit.tail_bytes,
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
