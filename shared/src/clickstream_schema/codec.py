"""The wire format: one UTF-8 JSON object per Kafka message, key = ``session_id``.

``decode`` is the only way bytes become a :class:`ClickEvent`; its failures are
classified so that a dead-letter record says *why* a message was refused.
"""

from __future__ import annotations

import json
from typing import Final, Literal

from pydantic import ValidationError

from clickstream_schema.event import ClickEvent

Reason = Literal["empty", "oversize", "not_utf8", "not_json", "not_object", "schema"]

#: Larger messages are refused before parsing (Kafka's default max message size).
MAX_MESSAGE_BYTES: Final = 1_048_576
_NUL_ESCAPE: Final = b"\\u0000"


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
    """Parse and validate one message value; raise :class:`InvalidEvent` if it is not an event."""
    if not value:
        raise InvalidEvent("empty", "message has no value")
    if len(value) > max_bytes:
        raise InvalidEvent("oversize", f"{len(value)} bytes exceeds the {max_bytes}-byte limit")
    if _NUL_ESCAPE in value:
        # Valid JSON, but neither PostgreSQL text nor OpenSearch keywords can hold
        # NUL; refusing it here keeps one bad message from failing a whole batch.
        raise InvalidEvent("schema", "strings must not contain NUL (\\u0000)")
    try:
        # One call does UTF-8, JSON and schema checks in pydantic-core.
        return ClickEvent.model_validate_json(value)
    except ValidationError as error:
        raise _classify(value, error) from None


def _classify(value: bytes, error: ValidationError) -> InvalidEvent:
    # Slow path, taken only by bad messages: find the first layer that fails.
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidEvent("not_utf8", str(exc))
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        return InvalidEvent("not_json", str(exc))
    if not isinstance(parsed, dict):
        return InvalidEvent("not_object", f"expected a JSON object, got {type(parsed).__name__}")
    first = error.errors(include_url=False, include_input=False)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<event>'}: {e['msg']}" for e in first[:5]
    )
    return InvalidEvent("schema", f"{error.error_count()} error(s): {summary}")
