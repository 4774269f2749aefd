"""``decode`` is total, and what it accepts every store can hold (properties).

Total: for any bytes it returns a ClickEvent or raises InvalidEvent with one of
the documented reasons, never anything else. Storable: an accepted event's
strings encode as UTF-8 without NUL, its time converts to UTC, its numbers are
finite, and its wire JSON has the types OpenSearch's strict mapping parses.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC
from typing import Any, get_args

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clickstream_schema import (
    DERIVED_ID_NAMESPACE,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    ClickEvent,
    InvalidEvent,
    decode,
    encode,
)
from clickstream_schema.codec import Reason
from support.hostile import (
    BASE,
    arbitrary_values,
    extreme_events,
    near_misses,
    nested,
    nested_in_event,
    wire,
)

DECODE_REASONS = set(get_args(Reason)) - {"unstorable", "crashed_decoder"}
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode(value: bytes | None) -> ClickEvent | InvalidEvent:
    try:
        return decode(value)
    except InvalidEvent as error:
        refused = error
    assert refused.reason in DECODE_REASONS
    return refused


def _assert_storable(event: ClickEvent, value: bytes) -> None:
    for name, field_value in _strings(event.model_dump()):
        assert "\x00" not in field_value, name
        field_value.encode("utf-8")  # no lone surrogates (asyncpg, orjson)
    utc = event.timestamp.astimezone(UTC)  # must not overflow
    assert TIMESTAMP_MIN <= utc < TIMESTAMP_MAX
    raw = json.loads(value)  # the JSON the sink forwards to OpenSearch
    assert isinstance(raw["timestamp"], str)
    if "event_id" in raw:
        assert raw["event_id"] == str(event.event_id)
    else:  # derived from the exact bytes (README's rule, with the standard library)
        assert event.event_id == uuid.uuid5(DERIVED_ID_NAMESPACE, value.decode("utf-8"))
    assert raw.get("schema_version", 1) == 1
    assert type(raw.get("schema_version", 1)) is int
    numbers = [raw.get("price")]
    if raw.get("geo"):
        numbers += [raw["geo"]["location"]["lat"], raw["geo"]["location"]["lon"]]
    for number in numbers:
        if number is not None:
            assert type(number) in (int, float)
            assert math.isfinite(number)
    # The model's own encoding is plain JSON that orjson (the aggregator) writes too.
    key, body = encode(event)
    assert decode(body) == event
    assert key == event.session_id.encode()
    orjson.dumps(event.model_dump(mode="json"))


def _strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _strings(v, f"{path}.{k}")]
    return []


@FAST
@given(st.binary(max_size=256))
def test_any_bytes_become_an_event_or_an_invalid_event(value: bytes) -> None:
    result = _decode(value)
    if isinstance(result, ClickEvent):
        _assert_storable(result, value)


@FAST
@given(arbitrary_values())
@example(nested(10_000))
@example(nested(3_000, arrays=False))
@example(nested_in_event(5_000))
@example(b'{"price":1' + b"0" * 5000 + b"}")
def test_any_json_and_any_nesting_become_an_event_or_an_invalid_event(
    value: bytes | None,
) -> None:
    result = _decode(value)
    if isinstance(result, ClickEvent):
        _assert_storable(result, value or b"")


@FAST
@given(extreme_events(), st.booleans())
def test_every_event_at_the_limits_is_accepted_and_storable(
    event: dict[str, Any], ascii_only: bool
) -> None:
    value = wire(event, ascii_only=ascii_only)
    result = _decode(value)
    assert isinstance(result, ClickEvent), result
    _assert_storable(result, value)


@FAST
@given(near_misses())
def test_a_valid_event_with_one_hostile_field_is_refused_or_storable(value: bytes) -> None:
    result = _decode(value)
    if isinstance(result, ClickEvent):
        _assert_storable(result, value)


def test_the_base_event_of_the_strategies_is_valid() -> None:
    assert isinstance(_decode(wire(BASE)), ClickEvent)
