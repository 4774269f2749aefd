"""The fault suite's dataset keeps its bookkeeping: poison is exactly what decode refuses."""

from __future__ import annotations

from collections import Counter

import pytest

from clickstream_schema import InvalidEvent, decode
from support.dataset import ABUSIVE_SEARCHES, MAX_BYTES, Dataset, build
from support.reference import MAX_SEARCH_QUERIES, expected_rows, settle


@pytest.fixture(scope="module")
def data() -> Dataset:
    return build(6_000, poison_rate=0.01)


def _reason(value: bytes | None) -> str | None:
    try:
        decode(value, max_bytes=MAX_BYTES)
    except InvalidEvent as error:
        return error.reason
    return None


def test_every_poison_value_is_refused_and_nothing_else(data: Dataset) -> None:
    refused = [value for _key, value in data.messages if _reason(value) is not None]
    assert Counter(refused) == Counter(data.poison)


def test_the_poison_covers_every_decode_reason(data: Dataset) -> None:
    reasons = Counter(_reason(value) for value in data.poison)
    assert set(reasons) == {"empty", "oversize", "not_utf8", "not_json", "not_object", "schema"}


def test_the_hostile_kinds_are_in_the_mix(data: Dataset) -> None:
    poison = [value or b"" for value in data.poison]
    assert any(value.startswith(b"[[[[") for value in poison)
    assert any(b"9999-12-31T23:59:59-14:00" in value for value in poison)
    assert any(b"0001-01-01T00:00:00+14:00" in value for value in poison)
    assert any(b"\\ud800" in value for value in poison)
    assert any(b'"lat":NaN' in value for value in poison)


def test_the_abusive_session_keeps_its_first_hundred_queries(data: Dataset) -> None:
    assert data.abusive_searches == ABUSIVE_SEARCHES > MAX_SEARCH_QUERIES
    positioned = [(0, i, key, value) for i, (key, value) in enumerate(data.messages)]
    applied = settle(positioned, max_bytes=MAX_BYTES).applied
    rows = expected_rows(applied)
    (abusive,) = (row for sid, row in rows.items() if sid.startswith("s-abusive-"))
    assert abusive["event_type_counts"]["search"] == ABUSIVE_SEARCHES
    queries = [e.search_query for e in applied if e.session_id == abusive["session_id"]]
    assert abusive["search_queries"] == queries[:MAX_SEARCH_QUERIES]
    assert len(abusive["search_queries"]) == MAX_SEARCH_QUERIES
