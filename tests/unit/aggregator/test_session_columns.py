"""The session metric specification against the verifier's own (independent) fold."""

from __future__ import annotations

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
