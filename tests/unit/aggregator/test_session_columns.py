"""The session metric specification against the verifier's own (independent) fold."""

from __future__ import annotations

import pytest

from clickstream_aggregator import session_columns as spec
from clickstream_ops.verify import fold


def test_the_verifier_checks_every_metric_the_aggregator_writes() -> None:
    # Counters other than page_view_count are compared through event_type_counts;
    # session_id is the key the verifier matches rows by.
    counters = {f"{kind}_count" for kind in spec.COUNTED_TYPES} - {"page_view_count"}
    written = set(spec.TABLE_COLUMNS) - counters - {"session_id", "updated_at"}
    assert set(fold.COLUMNS) == written


def test_the_verifier_keeps_as_many_search_queries_as_the_aggregator() -> None:
    assert fold.MAX_SEARCH_QUERIES == spec.MAX_SEARCH_QUERIES


def test_every_upserted_column_has_one_merge_rule_naming_it() -> None:
    names = [c.name for c in spec.UPSERT_COLUMNS]
    assert len(names) == len(set(names))
    for column in spec.UPSERT_COLUMNS[1:]:
        assert f"s.{column.name}" in column.merge, column.name


def test_the_verifier_folds_each_set_from_the_same_event_field_as_the_aggregator() -> None:
    # Both fold independently; a set fed from another field in one of them is a bug in one.
    assert {(name, event_field) for name, _, event_field in fold.SETS} == set(spec.DISTINCT_SETS)


def test_the_verifier_compares_every_set_it_folds_and_its_count() -> None:
    for name, count, _ in fold.SETS:
        assert name in fold.COLUMNS, name
        assert count in fold.COLUMNS, count
        assert count in spec.GENERATED_COLUMNS, count


def _row(session_id: str, revenue_cents: int) -> list[object]:
    row: list[object] = [None] * len(spec.UPSERT_COLUMNS)
    names = [c.name for c in spec.UPSERT_COLUMNS]
    row[names.index("session_id")] = session_id
    row[names.index("total_revenue")] = revenue_cents
    row[names.index("unique_pages")] = ["https://example.com/a", "https://example.com/é"]
    return row


def test_rows_travel_as_one_json_document_that_decodes_to_them() -> None:
    rows = [_row("s-1", 150), _row("s-2", 0)]
    encoded = spec.rows_json(rows)
    assert (encoded.count, encoded.rows()) == (2, rows)
    assert spec.column_values(encoded, "total_revenue") == [150, 0]


def test_an_integer_beyond_64_bits_is_written_out_for_postgresql_to_refuse() -> None:
    # orjson stops at 64 bits; the row is still written, whole, and the
    # database refuses it (out of int8's range) where the policy decides.
    rows = [_row("s-1", 2**70)]
    encoded = spec.rows_json(rows)
    assert encoded.rows() == rows
    assert b"1180591620717411303424" in encoded.json


def test_joined_rows_are_in_session_order_and_refused_when_parts_share_a_session() -> None:
    one = spec.rows_json([_row("s-2", 1), _row("s-4", 2)])
    two = spec.rows_json([_row("s-1", 3), _row("s-3", 4)])
    both = spec.joined([one, two])
    assert both is not None
    assert spec.column_values(both, "session_id") == ["s-1", "s-2", "s-3", "s-4"]
    assert spec.joined([one, spec.rows_json([_row("s-4", 5)])]) is None


def test_a_value_json_cannot_hold_is_not_written_out() -> None:
    # Only the 64-bit limit is left to PostgreSQL; any other value orjson refuses
    # is a bug here, even one the standard encoder would write out (an int key).
    row = _row("s-1", 0)
    row[0] = {1: "a"}
    with pytest.raises(TypeError):
        spec.rows_json([row])
