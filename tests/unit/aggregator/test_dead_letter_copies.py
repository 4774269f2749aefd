"""What the relay writes for an outbox row: always a record Kafka can take, never a lie."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clickstream_aggregator.deadletters.copies import (
    HEADER_KEY_BYTES,
    HEADER_MESSAGE,
    HEADER_OFFSET,
    HEADER_TRUNCATED,
    HEADER_VALUE_BYTES,
    MAX_ERROR_MESSAGE_BYTES,
    build_copy,
    record_size,
)

BUDGET = 16_384


def _row(key: bytes | None, value: bytes | None, message: str = "bad") -> dict[str, Any]:
    return {
        "source_offset": 42,
        "message_key": key,
        "message_value": value,
        "message_timestamp_ms": 1_764_547_200_000,
        "reason": "oversize",
        "error_class": "ValueError",
        "error_message": message,
    }


def _bytes(size: int, seed: int) -> bytes:
    return bytes((seed + i) % 251 for i in range(size))


sizes = st.one_of(st.none(), st.integers(0, 3 * BUDGET))


@settings(max_examples=200, deadline=None)
@given(
    key_size=sizes,
    value_size=sizes,
    seed=st.integers(0, 250),
    message=st.text(max_size=3 * MAX_ERROR_MESSAGE_BYTES),
    refused=st.integers(0, 3),
    budget=st.integers(BUDGET, 4 * BUDGET),
)
def test_every_copy_fits_the_budget_and_says_what_was_cut(
    key_size: int | None,
    value_size: int | None,
    seed: int,
    message: str,
    refused: int,
    budget: int,
) -> None:
    key = None if key_size is None else _bytes(key_size, seed)
    value = None if value_size is None else _bytes(value_size, seed + 1)
    row = _row(key, value, message)

    copy = build_copy("events", 3, row, max_bytes=budget, refused=refused)

    assert copy.size <= budget
    assert copy == build_copy("events", 3, row, max_bytes=budget, refused=refused)
    headers = dict(copy.headers)
    assert headers[HEADER_OFFSET] == b"42"
    assert len(headers[HEADER_MESSAGE]) <= MAX_ERROR_MESSAGE_BYTES
    if copy.kind == "full":
        assert refused == 0
        assert (copy.key, copy.value) == (key, value if value is not None else b"")
        assert HEADER_TRUNCATED not in headers
    else:
        assert headers[HEADER_VALUE_BYTES] == str(-1 if value is None else len(value)).encode()
        assert headers[HEADER_KEY_BYTES] == str(-1 if key is None else len(key)).encode()
        assert (value or b"").startswith(copy.value)
        assert copy.key in (None, key)
    if copy.kind == "truncated":
        cut = headers[HEADER_TRUNCATED].split(b",")
        assert (b"key" in cut) == (key is not None and copy.key is None)
        assert (b"value" in cut) == (len(copy.value) < len(value or b""))
    if refused:
        assert copy.kind == "headers_only"
        assert (copy.key, copy.value) == (None, b"")


def test_a_row_that_fits_is_copied_whole() -> None:
    row = _row(b"session-1", b'{"event_type": 1}')
    copy = build_copy("events", 0, row, max_bytes=BUDGET)
    assert copy.kind == "full"
    assert (copy.key, copy.value, copy.timestamp_ms) == (
        b"session-1",
        b'{"event_type": 1}',
        1_764_547_200_000,
    )


def test_an_oversize_value_keeps_as_much_as_fits() -> None:
    value = b"x" * (4 * BUDGET)
    copy = build_copy("events", 0, _row(b"k", value), max_bytes=BUDGET)
    assert copy.kind == "truncated"
    assert copy.key == b"k"
    # Nearly the whole budget is used: only headers and framing are left out.
    assert BUDGET - 400 < record_size(copy.key, copy.value, copy.headers) <= BUDGET
    assert dict(copy.headers)[HEADER_TRUNCATED] == b"value"


def test_a_keyless_tombstone_is_copied_with_an_empty_value_marked_null() -> None:
    copy = build_copy("events", 0, _row(None, None), max_bytes=BUDGET)
    assert (copy.key, copy.value, copy.kind) == (None, b"", "full")
    assert dict(copy.headers)[HEADER_VALUE_BYTES] == b"-1"
