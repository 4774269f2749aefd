"""The fast decoder and the model: the same bytes accepted, the same reasons, the same values.

The model (``clickstream_schema.decode``) is the contract; ``fast_decode.decode``
may only be faster. For any bytes, hostile ones included, both either refuse
with the same reason and detail, or accept with field-by-field equal values of
the same form (a Decimal's digits, a datetime's offset). The fast path must also
be the one taken for ordinary traffic, whichever optional fields it leaves out:
a decoder that always asked the model would pass the rest of this file.

The fast path checks the model's four patterns on one joined text (see
``fast_decode._checked``), so texts that would shift a part into its
neighbour's place (a separator inside a field, a field left out and its text
carried by another) are searched here too, as are texts near IP addresses (the
fast path picks the address family by the colon).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clickstream_schema import ClickEvent, InvalidEvent, decode, encode, fast_decode
from clickstream_schema.fast_decode import FastEvent
from support.feed import as_messages, generate
from support.hostile import (
    BASE,
    arbitrary_values,
    extreme_events,
    ip_addresses,
    near_misses,
    wire,
)

MANY = settings(max_examples=400)

Outcome = tuple[str, Any]


def _plain(value: Any) -> Any:
    """A field's value in a form that compares value and representation."""
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.utcoffset())
    if isinstance(value, float):
        return ("float", repr(value))
    if value is not None and hasattr(value, "country"):  # Geo or FastGeo
        location = value.location
        return ("geo", value.country, value.city, _plain(location.lat), _plain(location.lon))
    return (type(value).__name__ if not isinstance(value, str) else "str", value)


def _outcome(decoder: Any, value: bytes | None) -> Outcome:
    try:
        event = decoder(value)
    except InvalidEvent as error:
        return ("refused", (error.reason, error.detail))
    fields = {name: _plain(getattr(event, name)) for name in ClickEvent.model_fields}
    # The fast decoder holds the id as its canonical text: the text of the model's UUID.
    fields["event_id"] = ("id", str(event.event_id))
    return ("accepted", fields)


def _assert_same(value: bytes | None) -> None:
    model = _outcome(decode, value)
    assert _outcome(fast_decode.decode, value) == model
    # What the aggregator reads: the fast path's event, or the model's converted.
    if model[0] == "accepted":
        assert _outcome(lambda v: fast_decode.from_model(decode(v)), value) == model


def _with(field: str, raw: bytes) -> bytes:
    """BASE with one field's JSON text replaced (or added) verbatim."""
    event = {k: v for k, v in BASE.items() if k != field}
    return wire(event)[:-1] + b',"' + field.encode() + b'":' + raw + b"}"


def _event(without: tuple[str, ...] = (), **fields: Any) -> bytes:
    """BASE without some fields, with others replaced."""
    return wire({**{k: v for k, v in BASE.items() if k not in without}, **fields})


#: What _checked joins the pattern fields' texts with.
SEPARATOR = fast_decode._SEPARATOR


@MANY
@given(arbitrary_values())
def test_any_bytes_give_the_same_outcome(value: bytes | None) -> None:
    _assert_same(value)


@MANY
@given(extreme_events(), st.booleans())
def test_valid_events_at_their_limits_give_the_same_values(
    event: dict[str, Any], ascii_only: bool
) -> None:
    _assert_same(wire(event, ascii_only=ascii_only))


@MANY
@given(near_misses())
def test_near_misses_are_refused_for_the_same_reason(value: bytes) -> None:
    _assert_same(value)


_STRING_FIELDS = (
    "event_id",
    "timestamp",
    "user_id",
    "session_id",
    "page_url",
    "user_agent",
    "ip_address",
    "viewport_size",
    "event_type",
    "device_type",
)


@MANY
@given(
    extreme_events(),
    st.sampled_from(_STRING_FIELDS),
    st.sampled_from(("\n", "\r\n", " ", "\t", "\x00", "\u2028", "x", "Z", "0")),
    st.booleans(),
)
def test_a_character_after_a_pattern_field_changes_both_answers_alike(
    event: dict[str, Any], field: str, tail: str, ascii_only: bool
) -> None:
    # Python's `$` matches before a final newline; the model's regex engine does not.
    event[field] = event.get(field, BASE[field]) + tail
    _assert_same(wire(event, ascii_only=ascii_only))


@MANY
@given(
    st.one_of(
        st.floats(allow_nan=False).map(lambda f: json.dumps(f).encode()),
        st.integers(-(10**12), 10**12).map(lambda i: str(i).encode()),
        st.decimals(places=3, allow_nan=False, allow_infinity=False).map(lambda d: str(d).encode()),
        st.sampled_from(
            (
                b"0",
                b"-0",
                b"-0.0",
                b"0.0",
                b"1e2",
                b"1E2",
                b"19.90",
                b"19.999",
                b"1000000",
                b"1000000.00",
                b"1000000.01",
                b"999999.99",
                b"0.1",
                b"0.30000000000000004",
                b'"19.99"',
                b"true",
                b"null",
                b"[]",
                b"{}",
                b"1e400",
                b"5e-324",
                b"10" * 30,
            )
        ),
    ),
    st.sampled_from(("purchase", "add_to_cart", "page_view")),
)
def test_prices_in_any_number_form_give_the_same_decimal_or_refusal(
    price: bytes, event_type: str
) -> None:
    value = _with("price", price).replace(b'"page_view"', f'"{event_type}"'.encode(), 1)
    _assert_same(value)


@pytest.mark.parametrize(
    "value",
    [
        # The last of duplicate keys wins in both; an earlier valid one must not be kept.
        _with("event_id", b'"6F1C1B7E-1F53-4D4B-8A8E-2B1F2D3C4E5F"'),
        wire(BASE)[:-1] + b',"event_id":"6F1C1B7E-1F53-4D4B-8A8E-2B1F2D3C4E5F"}',
        wire(BASE)[:-1] + b',"user_id":""}',
        wire(BASE)[:-1] + b',"schema_version":true}',
        wire(BASE)[:-1] + b',"schema_version":1.0}',
        _with("user_id", b'"a\\u0000b"'),
        _with("user_id", b'"\\ud800"'),
        _with("referrer", b"null"),
        # An absent event_id is derived from the bytes; a null one is refused.
        wire({k: v for k, v in BASE.items() if k != "event_id"}),
        _with("event_id", b"null"),
        _with("event_id", b'"00000000-0000-0000-0000-000000000000"'),
        wire({k: v for k, v in BASE.items() if k not in ("device_type", "viewport_size")}),
        _with("device_type", b"null"),
        _with("viewport_size", b"null"),
        _with("device_type", b'"unknown"'),
        _with("geo", b"null"),
        _with("geo", b'{"country":"FI","city":"x","location":{"lat":90,"lon":-180}}'),
        _with("geo", b'{"country":"FI","city":"x","location":{"lat":90.000001,"lon":0}}'),
        _with("geo", b'{"country":"fi","city":"x","location":{"lat":1,"lon":1}}'),
        _with("timestamp", b'"2026-11-01t09:00:00Z"'),
        _with("timestamp", b'"2026-11-01T24:00:00Z"'),
        _with("timestamp", b'"2026-02-30T09:00:00Z"'),
        _with("timestamp", b'"2026-11-01T09:00:60Z"'),
        _with("timestamp", b'"2099-12-31T23:59:59.9999999-18:00"'),
        _with("timestamp", b'"1970-01-01T00:00:00+00:01"'),
        _with("ip_address", b'"::ffff:1.2.3.4"'),
        _with("ip_address", b'"1.2.3.04"'),
        _with("ip_address", b'"1.2.3.4:80"'),
        _with("ip_address", b'"::1.2.3.4"'),
        _with("ip_address", b'"1.2.3.4::"'),
        _with("ip_address", b'"1.2.3"'),
        _with("user_id", b'"a\\u0001b"'),
        _with("user_id", b'"a\\\\u0000b"'),
        # A part's text carried by its neighbour when the field itself is left out.
        _event(("event_id",), timestamp=f"{BASE['timestamp']}{SEPARATOR}{BASE['event_id']}"),
        _event(("viewport_size",), event_id=f"{BASE['event_id']}{SEPARATOR}1920x1080"),
        _event(("geo",), viewport_size=f"1920x1080{SEPARATOR}FI"),
        _event(("event_id", "viewport_size", "geo"), timestamp=f"{BASE['timestamp']}{SEPARATOR}"),
        _event(timestamp=f"{BASE['timestamp']}{SEPARATOR}{BASE['event_id']}", event_id=""),
        # An empty text sent is not a field left out.
        _event(event_id=""),
        _event(viewport_size=""),
        _event(geo={**BASE["geo"], "country": ""}),
        _event(timestamp=""),
        _event(geo={**BASE["geo"], "country": f"F{SEPARATOR}I"}),
        _with("event_type", b'"click"'),
        _with("event_type", b'"search"'),
        b"\xef\xbb\xbf" + wire(BASE),
        b" \n" + wire(BASE) + b"\n ",
        wire(BASE) + b"x",
        wire(BASE).replace(b"Helsinki", b"Hels\xffinki"),
        b"",
        None,
    ],
)
def test_edge_cases_give_the_same_outcome(value: bytes | None) -> None:
    _assert_same(value)


@example(seed=1)
@settings(max_examples=5)
@given(st.integers(0, 2**16))
def test_the_producers_traffic_takes_the_fast_path_with_the_models_values(seed: int) -> None:
    for _, value in as_messages(generate(300, seed=seed)):
        assert isinstance(fast_decode.fast_path(value), FastEvent)
        _assert_same(value)


_OPTIONAL = ("event_id", "device_type", "viewport_size", "geo", "schema_version")


@MANY
@given(extreme_events(), st.sets(st.sampled_from(_OPTIONAL)), st.booleans())
def test_a_valid_event_takes_the_fast_path_whichever_optional_fields_it_leaves_out(
    event: dict[str, Any], left_out: set[str], ascii_only: bool
) -> None:
    value = wire({k: v for k, v in event.items() if k not in left_out}, ascii_only=ascii_only)
    if b"\\u0000" not in value:  # a text that spells the NUL escape goes to the model
        assert isinstance(fast_decode.fast_path(value), FastEvent)
    _assert_same(value)


@MANY
@given(
    st.sets(st.sampled_from(_OPTIONAL)),
    st.sampled_from(("timestamp", "event_id", "viewport_size")),
    st.sampled_from(("event_id", "viewport_size", "country")),
    st.sampled_from((SEPARATOR, SEPARATOR * 2, "")),
)
def test_a_pattern_fields_text_moved_into_its_neighbour_is_refused_alike(
    left_out: set[str], into: str, moved: str, separator: str
) -> None:
    event = {k: v for k, v in BASE.items() if k not in left_out}
    text = BASE["geo"]["country"] if moved == "country" else BASE[moved]
    event[into] = f"{event.get(into, BASE[into])}{separator}{text}"
    _assert_same(wire(event))


@MANY
@given(
    st.one_of(
        ip_addresses(),
        st.text(st.sampled_from("0123456789abcdefABCDEF.:%/x " + SEPARATOR), max_size=46),
        st.tuples(ip_addresses(), ip_addresses()).map(":".join),
        st.tuples(ip_addresses(), st.sampled_from((":", ".", "::", " ", "0"))).map("".join),
    )
)
def test_ip_address_texts_are_accepted_or_refused_alike(ip: str) -> None:
    _assert_same(_with("ip_address", json.dumps(ip).encode()))


def test_event_and_device_types_are_plain_strings_equal_to_the_models_members() -> None:
    # The fold counts and compares them without the enum's Python-level properties.
    model = decode(wire(BASE))
    for event in (fast_decode.decode(wire(BASE)), fast_decode.from_model(model)):
        assert type(event.event_type) is str
        assert type(event.device_type) is str
        assert event.event_type == model.event_type
        assert event.device_type == model.device_type


def test_an_event_without_id_takes_the_fast_path_with_the_derived_id() -> None:
    value = wire({k: v for k, v in BASE.items() if k not in ("event_id", "device_type")})
    assert isinstance(fast_decode.fast_path(value), FastEvent)
    _assert_same(value)


def test_a_valid_event_at_the_limits_takes_the_fast_path() -> None:
    event = {**BASE, "user_id": "😀" * 255, "page_url": "\u202e" * 2048, "price": 1_000_000}
    event["event_type"] = "purchase"
    assert isinstance(fast_decode.fast_path(wire(event)), FastEvent)
    _assert_same(wire(event))


def test_the_struct_declares_the_fields_in_the_models_order() -> None:
    # The order encode writes them in: msgspec finds each key of such a message at once.
    assert FastEvent.__struct_fields__ == tuple(ClickEvent.model_fields)
    assert list(json.loads(encode(decode(wire(BASE)))[1])) == [
        name for name in ClickEvent.model_fields if name in BASE or name == "schema_version"
    ]
