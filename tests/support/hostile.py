"""Hypothesis strategies for an untrusted events topic.

Three kinds of message value: arbitrary bytes, arbitrary JSON (deep nesting,
huge and non-finite numbers, lone surrogates), and events that the contract
accepts with every field pushed to its limits (lengths, Unicode, numbers,
dates and offsets, coordinates); plus near misses, a valid event with one field
made hostile. Values are built as wire JSON, the way a foreign producer would
send them, never through the model.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from clickstream_schema import TIMESTAMP_MAX, TIMESTAMP_MIN, EventType

Message = tuple[bytes | None, bytes | None]

#: A valid event as wire JSON; every strategy starts from (a copy of) it.
BASE: dict[str, Any] = {
    "event_id": "6f1c1b7e-1f53-4d4b-8a8e-2b1f2d3c4e5f",
    "schema_version": 1,
    "timestamp": "2026-11-01T09:00:00.156Z",
    "user_id": "u-1",
    "session_id": "s-1",
    "event_type": "page_view",
    "page_url": "https://shop.example.com/",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    "ip_address": "203.0.113.7",
    "device_type": "desktop",
    "viewport_size": "1920x1080",
    "geo": {"country": "FI", "city": "Helsinki", "location": {"lat": 60.17, "lon": 24.94}},
}

#: Characters that stress encoders, collations and byte counts: astral, combining,
#: right-to-left, zero-width, BOM, line separators, control, private use, quotes.
TRICKY = (
    "😀", "𝔘", "e\u0301", "\u202e", "עברית", "العربية", "\u200d", "\ufeff", "\u2028",
    "👩\u200d👩\u200d👧", "'", '"', "\\", "\n", "\x01", "\x7f", "\U0010ffff", "\ue000", "Z", "a",
)  # fmt: skip

#: Any character a UTF-8 string can carry, except NUL (the contract refuses it).
_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")


def text(max_size: int) -> st.SearchStrategy[str]:
    """Valid strings up to ``max_size`` code points, often exactly at the limit."""
    return st.one_of(
        st.text(_CHARS, min_size=1, max_size=min(max_size, 24)),
        st.lists(st.sampled_from(TRICKY), min_size=1, max_size=8)
        .map("".join)
        .map(lambda s: s[:max_size]),
        st.tuples(st.sampled_from(TRICKY), st.sampled_from((1, max_size - 1, max_size))).map(
            lambda pair: (pair[0] * pair[1])[: pair[1]] or "x"
        ),
    )


_MICROSECOND = timedelta(microseconds=1)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 strings inside the contract's range, at its edges and at odd offsets."""
    low, high = TIMESTAMP_MIN.replace(tzinfo=None), TIMESTAMP_MAX.replace(tzinfo=None)
    instant = draw(
        st.one_of(
            st.sampled_from((low, high - _MICROSECOND, datetime(2026, 11, 1, 9))),
            st.datetimes(min_value=low, max_value=high - _MICROSECOND),
        )
    )
    minutes = draw(
        st.one_of(
            st.sampled_from((0, 0, 60, -60, 345, -570, 14 * 60, -12 * 60, 18 * 60, -18 * 60)),
            st.integers(-18 * 60, 18 * 60),
        )
    )
    local = instant + timedelta(minutes=minutes)
    digits = draw(st.integers(0, 9))
    # Digits beyond microseconds are truncated by every store alike; fewer digits
    # move the instant down, never below the lower bound (a whole second).
    fraction = (f"{local.microsecond:06d}" + "987")[:digits]
    if minutes == 0 and draw(st.booleans()):
        offset = "Z"
    else:
        sign = "+" if minutes >= 0 else "-"
        offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + offset


def prices() -> st.SearchStrategy[float | int]:
    """Prices as JSON numbers: cents from 0 to 1,000,000.00, edges included."""
    cents = st.one_of(st.sampled_from((0, 1, 99_999_999, 100_000_000)), st.integers(0, 100_000_000))
    return cents.flatmap(
        lambda c: st.sampled_from(
            (float(Decimal(c) / 100),) + ((c // 100,) if c % 100 == 0 else ())
        )
    )


def ip_addresses() -> st.SearchStrategy[str]:
    """Textual IPs in the forms the contract accepts: compressed, exploded, mapped, upper."""
    v4 = st.ip_addresses(v=4).map(str)
    v6 = st.ip_addresses(v=6).flatmap(
        lambda ip: st.sampled_from((str(ip), ip.exploded, ip.exploded.upper(), str(ip).upper()))
    )
    mapped = st.ip_addresses(v=4).flatmap(
        lambda ip: st.sampled_from((f"::ffff:{ip}", f"0000:0000:0000:0000:0000:ffff:{ip}"))
    )
    edges = st.sampled_from(
        ("0.0.0.0", "255.255.255.255", "::", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    )
    return st.one_of(edges, v4, v6, mapped)


def coordinates(limit: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from((-limit, limit, 0.0, -0.0, 5e-324)),
        st.floats(-limit, limit, allow_nan=False, allow_infinity=False),
    )


@st.composite
def extreme_events(
    draw: st.DrawFn, session_ids: st.SearchStrategy[str] | None = None
) -> dict[str, Any]:
    """A valid event (as wire JSON) with each field drawn towards its limits."""
    event_type = draw(st.sampled_from(list(EventType)))
    event: dict[str, Any] = {
        "event_id": str(draw(st.uuids())),
        "timestamp": draw(timestamps()),
        "user_id": draw(text(255)),
        "session_id": draw(session_ids if session_ids is not None else text(255)),
        "event_type": event_type.value,
        "page_url": draw(text(2048)),
        "user_agent": draw(text(2048)),
        "ip_address": draw(ip_addresses()),
        "device_type": draw(st.sampled_from(("desktop", "mobile", "tablet"))),
        "viewport_size": draw(
            st.tuples(st.integers(10, 99_999), st.integers(10, 99_999)).map(
                lambda wh: f"{wh[0]}x{wh[1]}"
            )
        ),
    }
    if draw(st.booleans()):
        event["schema_version"] = 1
    optional = {
        "referrer": text(2048),
        "product_id": text(255),
        "product_category": text(255),
        "price": prices(),
        "search_query": text(512),
        "element_id": text(255),
    }
    required = {"add_to_cart": "price", "purchase": "price", "search": "search_query"}
    required["click"] = "element_id"
    for name, strategy in optional.items():
        if required.get(event_type.value) == name or draw(st.booleans()):
            event[name] = draw(strategy)
    if draw(st.booleans()):
        event["geo"] = {
            "country": draw(st.from_regex(r"\A[A-Z]{2}\Z")),
            "city": draw(text(255)),
            "location": {"lat": draw(coordinates(90)), "lon": draw(coordinates(180))},
        }
    return event


def wire(event: dict[str, Any], *, ascii_only: bool = False) -> bytes:
    """JSON bytes as a foreign producer might write them (escaped or raw UTF-8)."""
    return json.dumps(event, ensure_ascii=ascii_only, allow_nan=True).encode(
        "utf-8", errors="surrogatepass"
    )


#: Values that break a field: wrong types, non-finite and huge numbers, NUL, lone
#: surrogates, deep nesting, strings past their limits, timestamps out of range.
_HOSTILE_VALUES: tuple[Any, ...] = (
    None, True, 0, -1, 1.5, float("nan"), float("inf"), -float("inf"), 10**40, "", " ",
    "nul\x00byte", "\ud800", "a\udfffb", [], {}, [[[[[]]]]], "x" * 2049,
    "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z", "2026-11-01 09:00:00Z", "2026-11-01T09:00:00+18:01",
    "2026-11-01T09:00:00", 1_700_000_000, "6F1C1B7E-1F53-4D4B-8A8E-2B1F2D3C4E5F",
    "01.2.3.4", "fe80::1%eth0", "1.2.3.4/24", "NaN", "1_000",
)  # fmt: skip


def _paths(event: dict[str, Any]) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = [(key,) for key in event]
    if isinstance(event.get("geo"), dict):
        paths += [("geo", "country"), ("geo", "city"), ("geo", "location", "lat")]
        paths += [("geo", "location", "lon")]
    return paths


@st.composite
def near_misses(draw: st.DrawFn) -> bytes:
    """A valid event with one field replaced, removed or added: mostly refused."""
    event = json.loads(json.dumps(draw(extreme_events())))
    path = draw(st.sampled_from(_paths(event)))
    target = event
    for key in path[:-1]:
        target = target[key]
    action = draw(st.sampled_from(("replace", "replace", "remove", "add")))
    if action == "remove":
        del target[path[-1]]
    elif action == "add":
        target["unexpected"] = draw(st.sampled_from(_HOSTILE_VALUES))
    else:
        target[path[-1]] = draw(st.sampled_from(_HOSTILE_VALUES))
    return wire(event, ascii_only=draw(st.booleans()))


def nested(depth: int, *, arrays: bool = True) -> bytes:
    if arrays:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def nested_in_event(depth: int) -> bytes:
    """A valid event carrying a deeply nested array in one extra field."""
    body = wire(BASE)
    return body[:-1] + b',"extra":' + nested(depth) + b"}"


_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included: json.dumps writes them as NaN/Infinity
    st.text(st.characters(codec="utf-8") | st.sampled_from(("\ud800", "\x00", "\udc00"))),
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def arbitrary_values() -> st.SearchStrategy[bytes | None]:
    """Any message value: bytes, JSON, deep nesting, huge numbers, near misses."""
    return st.one_of(
        st.none(),
        st.binary(max_size=64),
        _JSON.map(lambda v: json.dumps(v, allow_nan=True).encode()),
        st.integers(150, 6000).map(nested),
        st.integers(150, 3000).map(lambda d: nested(d, arrays=False)),
        st.integers(150, 3000).map(nested_in_event),
        st.integers(4300, 6000).map(lambda n: b'{"price":1' + b"0" * n + b"}"),
        near_misses(),
    )


def session_keys(count: int) -> list[str]:
    """Session ids for a run: some ordinary, some at the limits of the field."""
    pool = ["s-1", "😀" * 255, "e\u0301" * 127, "\u202eעברית", "Z" * 255, "a b\tc"]
    return [pool[i % len(pool)] + (f"-{i}" if i >= len(pool) else "") for i in range(count)]


def extreme_messages(sessions: list[str]) -> st.SearchStrategy[Message]:
    """Valid extreme events of a few sessions, keyed by their session as producers do."""

    def message(event: dict[str, Any], ascii_only: bool) -> Message:
        return event["session_id"].encode(), wire(event, ascii_only=ascii_only)

    return st.builds(message, extreme_events(st.sampled_from(sessions)), st.booleans())


def hostile_messages() -> st.SearchStrategy[Message]:
    """Anything at all: key and value both arbitrary."""
    # Kafka clients need a key or a value: a tombstone has a key.
    return st.tuples(st.one_of(st.none(), st.binary(max_size=16)), arbitrary_values()).map(
        lambda m: (b"", None) if m == (None, None) else m
    )
