"""The event's field types: what every store can hold, in the form it parses.

A message that passes ``decode`` must not fail later in PostgreSQL (UTF-8 text,
``timestamptz``, ``inet``, ``jsonb``) or in OpenSearch (strict mapping: ``date``,
``ip``, ``keyword``, ``short``, ``float``, ``geo_point``): one such value would
otherwise fail a whole batch, or land in the sink's dead-letter topic. The Kafka
Connect sink forwards the *raw* JSON, not the model's re-encoding, so JSON input
must also have the form OpenSearch parses; Python callers (the producer, tests)
keep pydantic's usual conversions, and ``encode`` writes the canonical form.

* Strings: no NUL (PostgreSQL text cannot hold it). Lone UTF-16 surrogates are
  refused by pydantic-core itself, in JSON (as invalid JSON) and from Python.
* ``timestamp``: RFC 3339, ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`` with an
  upper-case ``T``/``Z`` and an offset of at most ±18:00 (java.time's limit), and
  as a UTC instant within [:data:`TIMESTAMP_MIN`, :data:`TIMESTAMP_MAX`). Every
  store and Python's ``datetime`` can hold and convert those; a device clock
  outside them is broken rather than early or late. Unix numbers are refused
  (pydantic reads them as seconds, OpenSearch as milliseconds).
* Numbers: finite (no NaN or infinity); in JSON, numbers rather than strings or
  booleans (OpenSearch parses neither ``true`` nor ``"1_000"`` as a number).
* ``event_id``: in JSON, the canonical lower-case hyphenated UUID; the sink makes
  it the OpenSearch document id, so other spellings of one id would be separate
  documents there while PostgreSQL deduplicates them as one event.
* ``ip_address``: textual IPv4/IPv6 that both PostgreSQL ``inet`` and OpenSearch
  ``ip`` parse (no zone ids, prefixes or leading zeros).

JSON input is checked inside pydantic-core (``json_or_python_schema``) where it
can be; on the hot path (``decode``) only the IP address check (``inet_pton``) and
prices (a minority of events) call Python.
"""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, cast
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import CoreSchema
from pydantic_core import core_schema as cs

#: Earliest event time the contract accepts (inclusive), as a UTC instant.
TIMESTAMP_MIN: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Latest event time the contract accepts (exclusive), as a UTC instant.
TIMESTAMP_MAX: Final = datetime(2100, 1, 1, tzinfo=UTC)
#: Largest UTC offset java.time (OpenSearch's date parser) accepts.
MAX_UTC_OFFSET: Final = timedelta(hours=18)

#: Strings without NUL; a pattern is checked in pydantic-core and shows in the JSON Schema.
NO_NUL: Final = "^[^\\x00]*$"
#: RFC 3339 as OpenSearch's default date format and the ingest pipeline's
#: ``ZonedDateTime.parse`` read it.
RFC3339: Final = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]{1,9})?"
    "(?:Z|[+-](?:(?:0[0-9]|1[0-7]):[0-5][0-9]|18:00))$"
)
CANONICAL_UUID: Final = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_RFC3339_RE: Final = re.compile(RFC3339)


class _OnTheWire:
    """Validate JSON input with ``json`` (or strictly, by default), Python input as usual."""

    def __init__(self, json: CoreSchema | None = None) -> None:
        self.json = json

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        python = handler(source)
        json = self.json if self.json is not None else cast(CoreSchema, {**python, "strict": True})
        return cs.json_or_python_schema(json_schema=json, python_schema=python)


Identifier = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]
Text = Annotated[str, Field(min_length=1, max_length=2048, pattern=NO_NUL)]
SearchQuery = Annotated[str, Field(min_length=1, max_length=512, pattern=NO_NUL)]

#: The wire says exactly ``1``: JSON ``true`` equals 1 in Python, but OpenSearch's
#: ``short`` refuses it.
SchemaVersion = Annotated[
    Literal[1],
    _OnTheWire(cs.int_schema(strict=True, ge=1, le=1)),
    WithJsonSchema({"type": "integer", "const": 1}),
]


Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False), _OnTheWire()]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False), _OnTheWire()]


def _json_number(value: Any, info: ValidationInfo) -> Any:
    # pydantic's strict Decimal still takes JSON strings, so this check is Python.
    if info.mode == "json" and value.__class__ in (str, bool):
        raise ValueError("must be a JSON number")
    return value


# Prices travel as JSON numbers (what OpenSearch and most readers expect) but are
# exact decimals in Python so that revenue sums are exact.
Price = Annotated[
    Decimal,
    Field(ge=0, le=1_000_000, max_digits=10, decimal_places=2, allow_inf_nan=False),
    BeforeValidator(_json_number, json_schema_input_type=float),
    PlainSerializer(float, return_type=float, when_used="json"),
]


def _python_event_time(value: Any, handler: cs.ValidatorFunctionWrapHandler) -> datetime:
    # From Python: the same rules as on the wire, checked in Python (not the hot path).
    if isinstance(value, str) and _RFC3339_RE.fullmatch(value) is None:
        raise ValueError("must be RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)")
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 string or an aware datetime")
    parsed: datetime = handler(value)
    offset = parsed.utcoffset()
    if offset is not None and (abs(offset) > MAX_UTC_OFFSET or offset % timedelta(minutes=1)):
        raise ValueError("UTC offset must be whole minutes within ±18:00")
    # Aware datetimes compare as instants, without a conversion that could overflow.
    if not TIMESTAMP_MIN <= parsed < TIMESTAMP_MAX:
        raise ValueError(
            f"must be within [{TIMESTAMP_MIN.isoformat()}, {TIMESTAMP_MAX.isoformat()}) in UTC"
        )
    return parsed


class _EventTime:
    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        json = cs.chain_schema(
            [
                cs.str_schema(pattern=RFC3339),
                cs.datetime_schema(tz_constraint="aware", ge=TIMESTAMP_MIN, lt=TIMESTAMP_MAX),
            ]
        )
        python = cs.no_info_wrap_validator_function(_python_event_time, handler(source))
        return cs.json_or_python_schema(json_schema=json, python_schema=python)


Timestamp = Annotated[
    AwareDatetime,
    _EventTime(),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339}),
]

EventId = Annotated[
    UUID,
    _OnTheWire(cs.chain_schema([cs.str_schema(pattern=CANONICAL_UUID), cs.uuid_schema()])),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": CANONICAL_UUID}),
]


def _ip_address(value: str) -> str:
    # inet_pton is C code: ~20x faster than the ipaddress module on the hot path.
    # The forms it accepts (dotted quads without leading zeros, RFC 4291 IPv6
    # without zone ids or prefixes) are ones PostgreSQL's inet and OpenSearch's ip
    # both parse; the hostile-input suite checks that against PostgreSQL.
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
        except OSError:
            continue
        return value
    raise ValueError("value is not a valid IPv4 or IPv6 address")


IpAddress = Annotated[
    str,
    Field(min_length=2, max_length=45),
    AfterValidator(_ip_address),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]
