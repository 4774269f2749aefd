"""A faster ``decode`` with the same contract: msgspec checks what it can prove, the model the rest.

:func:`decode` gives, for any bytes, what :func:`clickstream_schema.decode`
gives: it raises the same :class:`InvalidEvent` (reason and detail), and it
returns an event with the same fields and the same values, the id as its
canonical text (see :class:`DecodedEvent`). Ordinary events, the bulk of a
topic, are parsed by msgspec into :class:`FastEvent`, a struct whose
constraints are the model's (lengths, the model's patterns anchored at the very
end, enums, ranges, no unknown fields), checked for what msgspec cannot say
(IP addresses, the time range, the fields an event type requires) and never
validated a second time. Whatever the fast path cannot prove valid in the
model's own terms is decoded by the model, and its event converted
(:func:`from_model`):

* every message msgspec or the checks here refuse, so a refused message gets
  the model's reason and detail, word for word;
* every ``price`` that is not a JSON number whose value has at most 7 + 2
  digits within the model's range (exponents, a third decimal, strings...),
  and every message with a NUL escape.

The fast path can only be wrong by accepting what the model refuses or by
giving other values; ``tests/unit/schema/test_fast_decode.py`` searches for both
over the hostile corpus. The aggregator decodes with it
(``clickstream_aggregator.decoding``); everything else uses the model.
"""

from __future__ import annotations

import re
import socket
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Final, Literal, Protocol, cast

import msgspec
from msgspec import UnsetType

from clickstream_schema.codec import MAX_MESSAGE_BYTES, derived_event_id
from clickstream_schema.codec import parse as model_parse
from clickstream_schema.event import UNSENT_EVENT_ID, ClickEvent, DeviceType, EventType
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


# gc=False: the structs hold strings, numbers and each other, never a cycle, so
# the garbage collector need not track the ~10,000 of them a batch makes.
class FastPoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class FastGeo(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}\Z")]
    city: _Identifier
    location: FastPoint


class FastEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """The model's fields and values, once decoded.

    The annotations are the wire's: once checked, a FastEvent holds ``timestamp``
    as an aware datetime and ``price`` as a Decimal, as the model does, and
    ``event_id`` as the id's canonical text; read it as a :class:`DecodedEvent`.
    """

    # Parsed as a string, turned into a datetime once checked (see _checked).
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


#: The ``event_id`` of a message that carries none, as :func:`parse` gives it.
NO_EVENT_ID: Final = msgspec.UNSET


class _ToTheModel(Exception):
    """The fast path cannot vouch for this message; the model decides."""


class DecodedEvent(Protocol):
    """What :func:`parse` and :func:`decode` give, as the code that reads it sees it.

    A :class:`FastEvent` once checked: the model's values, except ``event_id``,
    which is the id's canonical text (``str`` of the model's UUID), or
    :data:`NO_EVENT_ID` from :func:`parse` when the message carries none.
    """

    @property
    def event_id(self) -> str | UnsetType: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def user_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def event_type(self) -> EventType: ...
    @property
    def page_url(self) -> str: ...
    @property
    def user_agent(self) -> str: ...
    @property
    def ip_address(self) -> str: ...
    @property
    def device_type(self) -> DeviceType | None: ...
    @property
    def referrer(self) -> str | None: ...
    @property
    def product_id(self) -> str | None: ...
    @property
    def product_category(self) -> str | None: ...
    @property
    def price(self) -> Decimal | None: ...
    @property
    def search_query(self) -> str | None: ...
    @property
    def geo(self) -> FastGeo | None: ...


def parse(value: bytes | None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> DecodedEvent:
    """What :func:`clickstream_schema.parse` gives, as a :class:`DecodedEvent`.

    Raises the model's :class:`InvalidEvent`; an absent ``event_id`` is :data:`NO_EVENT_ID`
    (the caller derives it, and may count it).
    """
    event = fast_path(value, max_bytes=max_bytes)
    if event is None:
        return from_model(model_parse(value, max_bytes=max_bytes))
    return cast(DecodedEvent, event)


def decode(value: bytes | None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> DecodedEvent:
    """What :func:`clickstream_schema.decode` gives: ``event_id`` derived when absent."""
    event = parse(value, max_bytes=max_bytes)
    if event.event_id is NO_EVENT_ID:
        return with_event_id(event, str(derived_event_id(value)))  # type: ignore[arg-type]
    return event


def with_event_id(event: DecodedEvent, event_id: str) -> DecodedEvent:
    """``event`` holding ``event_id`` (the text of a derived id)."""
    msgspec.structs.force_setattr(cast(FastEvent, event), "event_id", event_id)
    return event


def fast_path(value: bytes | None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> FastEvent | None:
    """The checked :class:`FastEvent` of ``value``; None when only the model can decide."""
    if not value or len(value) > max_bytes or _ESCAPED_NUL in value:
        return None
    try:
        return _checked(_DECODER.decode(value))
    except Exception:  # whatever it was, the model gives the answer
        return None


def from_model(event: ClickEvent) -> DecodedEvent:
    """The model's event as a :class:`DecodedEvent` (for what the fast path leaves to the model)."""
    fields = {name: getattr(event, name) for name in _FIELDS}
    fields["event_id"] = NO_EVENT_ID if event.event_id is UNSENT_EVENT_ID else str(event.event_id)
    if (geo := event.geo) is not None:
        point = FastPoint(geo.location.lat, geo.location.lon)
        fields["geo"] = FastGeo(geo.country, geo.city, point)
    return cast(DecodedEvent, FastEvent(**fields))


_FIELDS: Final = tuple(ClickEvent.model_fields)


def _checked(event: FastEvent) -> FastEvent:
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
