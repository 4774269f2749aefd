"""The wire format: one UTF-8 JSON object per Kafka message, keyed by ``session_id``.

Messages keyed otherwise (the design's reference producer keys by ``user_id``)
are decoded the same way: nothing here reads the key.

A message without ``event_id`` gets one derived from its exact bytes: the UUID
version 5 of the UTF-8 text of the message in :data:`DERIVED_ID_NAMESPACE`
(RFC 4122 section 4.3), so a byte-identical re-send is the same event, and a
re-send that differs in any byte (re-serialised, new timestamp) is another one.

``decode`` is the only way bytes become a :class:`ClickEvent`. It is total: for
any bytes it returns an event or raises :class:`InvalidEvent`, never anything
else, and its cost is bounded by the message size (no recursion, no unbounded
number conversion). Its failures are classified so that a dead-letter record
says *why* a message was refused. The reasons (:data:`Reason`):

``empty``
    no value at all (a tombstone) or zero bytes.
``oversize``
    larger than the size limit; refused before parsing.
``not_utf8``
    the bytes are not valid UTF-8.
``not_json``
    UTF-8, but not JSON that the parser accepts: syntax errors, trailing data,
    escapes of lone UTF-16 surrogates (no store can encode them), integers of
    more than 4,300 digits, or nesting deeper than the parser's limit (about 200 levels).
``not_object``
    valid JSON whose top level is not an object.
``schema``
    a JSON object that is not a valid event (see :mod:`clickstream_schema.event`
    for what the model refuses, e.g. NUL in strings or timestamps out of range).
``unstorable``
    never raised by ``decode``: the aggregator's reason for a valid event whose
    effect PostgreSQL refused (found by splitting the batch), e.g. a purchase
    that would take the session's ``total_revenue`` beyond ``NUMERIC(14,2)``.
``crashed_decoder``
    never raised by ``decode`` either: the aggregator's reason for a message
    whose preparing killed the worker process every time it was tried (found by
    splitting the batch in fresh workers), e.g. a crash in a native extension
    or memory exhaustion.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal
from uuid import UUID

from pydantic import ValidationError

from clickstream_schema.event import UNSENT_EVENT_ID, ClickEvent

Reason = Literal[
    "empty",
    "oversize",
    "not_utf8",
    "not_json",
    "not_object",
    "schema",
    "unstorable",
    "crashed_decoder",
]

#: Larger messages are refused before parsing (Kafka's default max message size).
MAX_MESSAGE_BYTES: Final = 1_048_576
#: Schema errors quoted in a dead letter's detail (the count of the rest follows).
_ERRORS_QUOTED: Final = 5
#: The name space of derived event ids: uuid5(NAMESPACE_URL, the event schema's $id).
DERIVED_ID_NAMESPACE: Final = UUID("ffee0993-a7bb-56f3-b299-d7bb8d8bb3b4")


class InvalidEvent(ValueError):
    """A message that is not a valid clickstream event, with a machine-readable reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


def encode(event: ClickEvent) -> tuple[bytes, bytes]:
    """Return the Kafka ``(key, value)`` of an event."""
    return event.session_id.encode(), event.model_dump_json(exclude_none=True).encode()


def decode(value: bytes | None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> ClickEvent:
    """Parse and validate one message value; raise :class:`InvalidEvent` if it is not an event.

    The event always has an ``event_id``: the message's own, or one derived from its bytes.
    """
    event = parse(value, max_bytes=max_bytes)
    if event.event_id is UNSENT_EVENT_ID:
        return with_derived_id(event, value)  # type: ignore[arg-type]  # parse refuses None
    return event


def derived_event_id(value: bytes) -> UUID:
    """The id of a message that carries none: uuid5(:data:`DERIVED_ID_NAMESPACE`, its text).

    Computed over the bytes (what ``uuid.uuid5`` does after encoding its name as
    UTF-8), so it never decodes the message again.
    """
    digest = hashlib.sha1(DERIVED_ID_NAMESPACE.bytes + value, usedforsecurity=False).digest()
    return UUID(bytes=digest[:16], version=5)


def with_derived_id(event: ClickEvent, value: bytes) -> ClickEvent:
    """``event`` (parsed from ``value`` without an event_id) with its derived id."""
    return event.model_copy(update={"event_id": derived_event_id(value)})


def parse(value: bytes | None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> ClickEvent:
    """:func:`decode` without deriving a missing id: ``event_id`` is then :data:`UNSENT_EVENT_ID`.

    For callers that count derived ids (the aggregator) or derive them
    themselves (``clickstream-verify`` checks the derivation independently).
    """
    if not value:
        raise InvalidEvent("empty", "message has no value")
    if len(value) > max_bytes:
        raise InvalidEvent("oversize", f"{len(value)} bytes exceeds the {max_bytes}-byte limit")
    try:
        # One call does UTF-8, JSON and schema checks in pydantic-core, whose JSON
        # parser bounds nesting depth and number sizes itself.
        return ClickEvent.model_validate_json(value)
    except ValidationError as error:
        raise _classify(value, error) from None
    except (RecursionError, ValueError, TypeError, ArithmeticError) as error:
        # Not expected from pydantic-core; a guard because the aggregator relies
        # on decode being total: whatever the bytes do, they become a dead letter.
        raise InvalidEvent("schema", f"{type(error).__name__}: {error}") from None


def _classify(value: bytes, error: ValidationError) -> InvalidEvent:
    # Slow path, taken only by bad messages. It reads pydantic's own errors, so it
    # never parses the message again (a second, recursive parser is what once let
    # deeply nested arrays escape as RecursionError).
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidEvent("not_utf8", str(exc))
    errors = error.errors(include_url=False, include_input=False, include_context=False)
    for item in errors:
        if item["type"] == "json_invalid":
            return InvalidEvent("not_json", item["msg"])
    if len(errors) == 1 and errors[0]["type"] == "model_type" and not errors[0]["loc"]:
        return InvalidEvent("not_object", errors[0]["msg"])
    summary = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<event>'}: {e['msg']}"
        for e in errors[:_ERRORS_QUOTED]
    )
    if len(errors) > _ERRORS_QUOTED:
        summary += f"; and {len(errors) - _ERRORS_QUOTED} more"
    return InvalidEvent("schema", f"{error.error_count()} error(s): {summary}")
