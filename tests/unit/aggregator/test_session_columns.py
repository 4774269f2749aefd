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
