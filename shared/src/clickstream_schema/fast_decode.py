"""A faster ``decode`` with the same contract: msgspec checks what it can prove, the model the rest.

:func:`decode` gives, for any bytes, what :func:`clickstream_schema.decode`
gives: it raises the same :class:`InvalidEvent` (reason and detail), and it
returns an event with the same fields and the same values, the id as its
canonical text and the event and device types as plain strings (see
:class:`DecodedEvent`). Ordinary events, the bulk of a topic, are parsed by
msgspec into :class:`FastEvent`, a struct with the model's lengths, enum
values, ranges and no unknown fields, then checked for what msgspec is not
asked to say (see :func:`_checked`): the model's four patterns (timestamp,
``event_id``, ``viewport_size``, ``geo.country``) and the form of an IPv4
address in one regular-expression call, an IPv6 address with ``inet_pton`` as
the model does, the time range and the fields an event type requires. A
checked event is never validated a second time. Whatever the fast path cannot
prove valid in the model's own terms is decoded by the model, and its event
converted (:func:`from_model`):

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

import itertools
import re
import socket
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Final, Literal, Protocol, cast

import msgspec
from msgspec import UnsetType
from pydantic import BaseModel
from pydantic_core import CoreConfig, SchemaValidator, core_schema

from clickstream_schema.codec import MAX_MESSAGE_BYTES, derived_event_id
from clickstream_schema.codec import parse as model_parse
from clickstream_schema.event import UNSENT_EVENT_ID, ClickEvent, DeviceType, EventType, Geo
from clickstream_schema.fields import CANONICAL_UUID, RFC3339, TIMESTAMP_MAX, TIMESTAMP_MIN

if TYPE_CHECKING:
    _EventTypeValue = str
    _DeviceTypeValue = str
else:
    # The enums' values as plain strings: the fold counts and compares them without
    # the enum's Python-level properties, and they equal the model's members.
    _EventTypeValue = Literal[tuple(member.value for member in EventType)]
    _DeviceTypeValue = Literal[tuple(member.value for member in DeviceType)]


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
    #: The model's pattern is checked with the event's others (see _checked).
    country: str
    city: _Identifier
    location: FastPoint


# kw_only: the fields in the model's order, which is the order encode writes
# them in; msgspec tries the next declared field first, so a message in that
# order finds each key at once.
class FastEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False, kw_only=True):
    """The model's fields and values, once decoded.

    The annotations are the wire's: once checked, a FastEvent holds ``timestamp``
    as an aware datetime and ``price`` as a Decimal, as the model does, and
    ``event_id`` as the id's canonical text; read it as a :class:`DecodedEvent`.
    The strings the model constrains with a pattern are plain ``str`` here and
    checked together by :func:`_checked` (one call instead of four).
    """

    # UNSET, not None: the model refuses a JSON null here, and so must msgspec.
    event_id: str | UnsetType = msgspec.UNSET
    schema_version: Literal[1] = 1
    # Parsed as a string, turned into a datetime once checked (see _checked).
    timestamp: str
    user_id: _Identifier
    session_id: _Identifier
    event_type: _EventTypeValue
    page_url: _Text
    referrer: _Text | None = None
    user_agent: _Text
    ip_address: Annotated[str, msgspec.Meta(min_length=2, max_length=45)]
    device_type: _DeviceTypeValue | None = None
    product_id: _Identifier | None = None
    product_category: _Identifier | None = None
    #: A JSON number as msgspec reads it, a Decimal once checked (a JSON string
    #: decodes as a Decimal straight away, and goes to the model: see _price).
    price: Decimal | int | float | None = None
    search_query: _SearchQuery | None = None
    element_id: _Identifier | None = None
    viewport_size: str | None = None
    geo: FastGeo | None = None


def _unanchored(pattern: str) -> str:
    assert pattern.startswith("^"), pattern
    assert pattern.endswith("$"), pattern
    return f"(?:{pattern[1:-1]})"


def _model_pattern(model: type[BaseModel], name: str) -> str:
    """The pattern the model validates field ``name`` with (read, not repeated here)."""
    (pattern,) = (
        item.pattern for item in model.model_fields[name].metadata if hasattr(item, "pattern")
    )
    return cast(str, pattern)


#: Joins the pattern fields' texts (a space: a literal in the pattern too). No
#: part's pattern admits it, so a joined text holding it elsewhere has too many
#: separators and fails: each part is matched whole by its own pattern.
_SEPARATOR: Final = " "
_TIMESTAMP_PATTERN: Final = _unanchored(RFC3339)
_OCTET: Final = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
#: The parts after the timestamp, in the order _checked joins them: the optional
#: pattern fields, then the IP address when it is IPv4 text (no colon). The
#: model reads the address with inet_pton; for IPv4 that accepts exactly four
#: decimal octets of at most 255 without leading zeros, which is this pattern
#: (were a platform's inet_pton to accept more, the model would take the rest).
_PARTS: Final = (
    _unanchored(CANONICAL_UUID),
    _unanchored(_model_pattern(ClickEvent, "viewport_size")),
    _unanchored(_model_pattern(Geo, "country")),
    f"{_OCTET}(?:\\.{_OCTET}){{3}}",
)


def _joined_patterns() -> dict[tuple[bool, ...], Callable[[str], object]]:
    """A check per presence of each part, of the parts' texts joined: an absent one is empty.

    Presence picks the check (never the text), so a field sent must match its
    pattern even when empty, and no text a sender chooses stands for "absent".
    Each check is a pydantic-core string validator, so the patterns run on the
    model's own regex engine (Rust's, anchored as the model's are; about 2.5x
    faster than ``re`` on these); a mismatch raises ValidationError.
    """
    checks: dict[tuple[bool, ...], Callable[[str], object]] = {}
    for present in itertools.product((True, False), repeat=len(_PARTS)):
        parts = [p if here else "" for p, here in zip(_PARTS, present, strict=True)]
        joined = _SEPARATOR.join((_TIMESTAMP_PATTERN, *parts))
        schema = core_schema.str_schema(pattern=f"^{joined}$", strict=True)
        validator = SchemaValidator(schema, CoreConfig(regex_engine="rust-regex"))
        checks[present] = validator.validate_python
    return checks


_DECODER: Final = msgspec.json.Decoder(FastEvent)
_PATTERNS: Final = _joined_patterns()
_REQUIRED_BY_TYPE: Final = {
    EventType.ADD_TO_CART.value: "price",
    EventType.PURCHASE.value: "price",
    EventType.CLICK.value: "element_id",
    EventType.SEARCH.value: "search_query",
}
#: Float reprs whose digits the model's rules (at most 10 digits, 2 decimal places) always admit.
_PLAIN_PRICE: Final = re.compile(r"(?:0|[1-9][0-9]{0,6})\.[0-9]{1,2}")
_MAX_PRICE: Final = Decimal(1_000_000)
_ESCAPED_NUL: Final = b"\\u0000"
_BACKSLASH: Final = ord("\\")


#: The ``event_id`` of a message that carries none, as :func:`parse` gives it.
NO_EVENT_ID: Final = msgspec.UNSET


class _ToTheModel(Exception):
    """The fast path cannot vouch for this message; the model decides."""


class DecodedEvent(Protocol):
    """What :func:`parse` and :func:`decode` give, as the code that reads it sees it.

    A :class:`FastEvent` once checked: the model's values, except ``event_id``,
    which is the id's canonical text (``str`` of the model's UUID), or
    :data:`NO_EVENT_ID` from :func:`parse` when the message carries none, and
    ``event_type`` and ``device_type``, which are the members' values as plain
    ``str`` (equal to the model's :class:`EventType` and :class:`DeviceType`
    members, which are ``StrEnum``).
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
    def event_type(self) -> str: ...
    @property
    def page_url(self) -> str: ...
    @property
    def user_agent(self) -> str: ...
    @property
    def ip_address(self) -> str: ...
    @property
    def device_type(self) -> str | None: ...
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
    _force_setattr(cast(FastEvent, event), "event_id", event_id)
    return event


def fast_path(value: bytes | None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> FastEvent | None:
    """The checked :class:`FastEvent` of ``value``; None when only the model can decide."""
    # Bytes hold the escape only where they hold a backslash; an int's membership
    # is a memchr, ~10x faster than a search for the escape (or bytes b"\\").
    if not value or len(value) > max_bytes or (_BACKSLASH in value and _ESCAPED_NUL in value):
        return None
    try:
        return _checked(_DECODER.decode(value))
    except Exception:  # whatever it was, the model gives the answer
        return None


def from_model(event: ClickEvent) -> DecodedEvent:
    """The model's event as a :class:`DecodedEvent` (for what the fast path leaves to the model)."""
    fields = {name: getattr(event, name) for name in _FIELDS}
    fields["event_id"] = NO_EVENT_ID if event.event_id is UNSENT_EVENT_ID else str(event.event_id)
    fields["event_type"] = event.event_type.value
    fields["device_type"] = None if event.device_type is None else event.device_type.value
    if (geo := event.geo) is not None:
        point = FastPoint(geo.location.lat, geo.location.lon)
        fields["geo"] = FastGeo(geo.country, geo.city, point)
    return cast(DecodedEvent, FastEvent(**fields))


_FIELDS: Final = tuple(ClickEvent.model_fields)


def _checked(event: FastEvent) -> FastEvent:
    event_id, viewport, geo, text = event.event_id, event.viewport_size, event.geo, event.timestamp
    # The model's rule for the address (fields._ip_address) is what inet_pton reads
    # as IPv4 or as IPv6. IPv4 text never holds a colon and IPv6 text always does,
    # so the colon names the one family that can accept it.
    ip = event.ip_address
    ipv4 = ":" not in ip
    # The parts in _PARTS order, joined by _SEPARATOR; an absent one is empty.
    joined = (
        f"{text} {event_id or ''} {viewport or ''} {'' if geo is None else geo.country} "
        f"{ip if ipv4 else ''}"
    )
    _PATTERNS[event_id is not NO_EVENT_ID, viewport is not None, geo is not None, ipv4](joined)
    if not ipv4:
        _inet_pton(_AF_INET6, ip)  # its OSError sends the message to the model
    if event.price is not None:
        _force_setattr(event, "price", _price(event.price))
    required = _REQUIRED_BY_TYPE.get(event.event_type)
    if required is not None and getattr(event, required) is None:
        raise _ToTheModel(required)
    # The pattern above admits only RFC 3339, which fromisoformat reads as pydantic does.
    timestamp = datetime.fromisoformat(text)
    if not TIMESTAMP_MIN <= timestamp < TIMESTAMP_MAX:
        raise _ToTheModel("timestamp")
    _force_setattr(event, "timestamp", timestamp)
    return event


_force_setattr: Final = msgspec.structs.force_setattr
_inet_pton: Final = socket.inet_pton
_AF_INET6: Final = socket.AF_INET6


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
