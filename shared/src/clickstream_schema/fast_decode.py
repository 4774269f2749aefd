"""A faster ``decode`` with the same contract: msgspec checks what it can prove, the model the rest.

:func:`decode` gives, for any bytes, what :func:`clickstream_schema.decode`
gives: it raises the same :class:`InvalidEvent` (reason and detail), and it
returns an event with the same fields and the same values. Ordinary events, the
bulk of a topic, are parsed by msgspec into :class:`FastEvent`, a struct whose
constraints are the model's (lengths, the model's patterns anchored at the very
end, enums, ranges, no unknown fields), checked for what msgspec cannot say
(IP addresses, the time range, the fields an event type requires) and never
validated a second time. Whatever the fast path cannot prove valid in the
model's own terms is decoded by the model, which returns a :class:`ClickEvent`:

* every message msgspec or the checks here refuse, so a refused message gets
  the model's reason and detail, word for word;
* every ``price`` that is not a JSON number whose value has at most 7 + 2
  digits within the model's range (exponents, a third decimal, strings...),
  and every message with a NUL escape.

The fast path can only be wrong by accepting what the model refuses or by
giving other values; ``tests/unit/schema/test_fast_decode.py`` searches for both
over the hostile corpus. Nothing in the pipeline uses this module: it is a
measured prototype (see docs/performance.md).
"""

from __future__ import annotations

import re
import socket
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Final, Literal
from uuid import UUID

import msgspec
from msgspec import UnsetType

from clickstream_schema.codec import MAX_MESSAGE_BYTES, derived_event_id
from clickstream_schema.codec import decode as model_decode
from clickstream_schema.event import ClickEvent, DeviceType, EventType
from clickstream_schema.fields import CANONICAL_UUID, RFC3339, TIMESTAMP_MAX, TIMESTAMP_MIN


def _anchored(pattern: str) -> str:
    # Python's `$` also matches before a final newline; pydantic-core's (Rust) does not.
    assert pattern.endswith("$")
    return pattern[:-1] + r"\Z"


# No NUL pattern on each string: JSON carries a NUL only as the escape \u0000 (a
# raw control byte in a string is invalid JSON), and a message with that escape
# anywhere goes to the model.
_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
_SearchQuery = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class FastPoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class FastGeo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}\Z")]
    city: _Identifier
    location: FastPoint


class FastEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The model's fields and values, once decoded.

    The annotations are the wire's: a decoded FastEvent holds ``event_id`` as a
    UUID (derived when absent), ``timestamp`` as an aware datetime and ``price``
    as a Decimal, as the model does.
    """

    # Parsed as strings, turned into UUID and datetime once checked (see _checked);
    # an absent event_id is derived from the message bytes, as the model's decode does.
    timestamp: Annotated[str, msgspec.Meta(pattern=_anchored(RFC3339))]
    user_id: _Identifier
    session_id: _Identifier
    event_type: EventType
    page_url: _Text
    user_agent: _Text
    ip_address: Annotated[str, msgspec.Meta(min_length=2, max_length=45)]
    # UNSET, not None: the model refuses a JSON null here, and so must msgspec.
    event_id: Annotated[str, msgspec.Meta(pattern=_anchored(CANONICAL_UUID))] | UnsetType = (
        msgspec.UNSET
    )
    device_type: DeviceType | None = None
    viewport_size: (
        Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}\Z")] | None
    ) = None
    schema_version: Literal[1] = 1
    referrer: _Text | None = None
    product_id: _Identifier | None = None
    product_category: _Identifier | None = None
    #: A JSON number as msgspec reads it, a Decimal once checked (a JSON string
    #: decodes as a Decimal straight away, and goes to the model: see _price).
    price: Decimal | int | float | None = None
    search_query: _SearchQuery | None = None
    element_id: _Identifier | None = None
    geo: FastGeo | None = None


_DECODER: Final = msgspec.json.Decoder(FastEvent)
_REQUIRED_BY_TYPE: Final = {
    EventType.ADD_TO_CART: "price",
    EventType.PURCHASE: "price",
    EventType.CLICK: "element_id",
    EventType.SEARCH: "search_query",
}
#: Float reprs whose digits the model's rules (at most 10 digits, 2 decimal places) always admit.
_PLAIN_PRICE: Final = re.compile(r"(?:0|[1-9][0-9]{0,6})\.[0-9]{1,2}")
_MAX_PRICE: Final = Decimal(1_000_000)
_ESCAPED_NUL: Final = b"\\u0000"


class _ToTheModel(Exception):
    """The fast path cannot vouch for this message; the model decides."""


def decode(value: bytes | None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> FastEvent | ClickEvent:
    """What :func:`clickstream_schema.decode` gives, a :class:`FastEvent` for ordinary events."""
    if not value or len(value) > max_bytes or _ESCAPED_NUL in value:
        return model_decode(value, max_bytes=max_bytes)
    try:
        return _checked(_DECODER.decode(value), value)
    except Exception:  # whatever it was, the model gives the answer
        return model_decode(value, max_bytes=max_bytes)


def _checked(event: FastEvent, value: bytes) -> FastEvent:
    if event.price is not None:
        msgspec.structs.force_setattr(event, "price", _price(event.price))
    required = _REQUIRED_BY_TYPE.get(event.event_type)
    if required is not None and getattr(event, required) is None:
        raise _ToTheModel(required)
    _check_ip(event.ip_address)
    # The pattern above admits only RFC 3339, which fromisoformat reads as pydantic does.
    timestamp = datetime.fromisoformat(event.timestamp)
    if not TIMESTAMP_MIN <= timestamp < TIMESTAMP_MAX:
        raise _ToTheModel("timestamp")
    if event.event_id is msgspec.UNSET:
        # Absent: the id the model's decode derives from the message bytes.
        msgspec.structs.force_setattr(event, "event_id", derived_event_id(value))
    else:
        msgspec.structs.force_setattr(event, "event_id", UUID(event.event_id))
    msgspec.structs.force_setattr(event, "timestamp", timestamp)
    return event


def _price(value: Decimal | int | float) -> Decimal:
    if isinstance(value, Decimal):
        raise _ToTheModel("price")  # sent as a JSON string
    if isinstance(value, int):
        price = Decimal(value)
    else:
        # The model reads a JSON number with a fraction as a float, then makes a
        # Decimal of its repr ("19.90" is Decimal("19.9")): the same here.
        text = repr(value)
        if _PLAIN_PRICE.fullmatch(text) is None:
            raise _ToTheModel("price")
        price = Decimal(text)
    if not 0 <= price <= _MAX_PRICE:
        raise _ToTheModel("price")
    return price


def _check_ip(value: str) -> None:
    # The model's rule (fields._ip_address): what inet_pton reads as IPv4 or IPv6.
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
        except OSError:
            continue
        return
    raise _ToTheModel("ip_address")
