"""Session aggregates → the column arrays of the ``session_metrics`` upsert.

Pure (no database import) so that worker processes can build the rows; the
repository's SQL names the same columns in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import orjson

from clickstream_aggregator.aggregate import SessionAggregate
from clickstream_schema import EventType

#: Event types with a counter column in ``session_metrics`` (``<type>_count``).
COUNTED_TYPES: Final = tuple(t.value for t in EventType)


def _json_array(values: Iterable[str]) -> str:
    return orjson.dumps(sorted(values)).decode()


def session_columns(sessions: Iterable[SessionAggregate]) -> list[list[Any]]:
    """Column arrays for the upsert, one list per ``unnest`` argument, in session order.

    Sorted by ``session_id`` so that concurrent transactions lock rows in the
    same order and cannot deadlock.
    """
    ordered = sorted(sessions, key=lambda s: s.session_id)
    dumps = orjson.dumps
    columns: list[list[Any]] = [
        [s.session_id for s in ordered],
        [s.user_id for s in ordered],
        [s.total_events for s in ordered],
        [s.first_ts for s in ordered],
        [s.last_ts for s in ordered],
        [_json_array(s.pages) for s in ordered],
        [s.revenue for s in ordered],
        [_json_array(s.products) for s in ordered],
        [dumps(s.search_queries).decode() for s in ordered],
        [_json_array(s.referrers) for s in ordered],
        [s.user_agent for s in ordered],
        [s.ip_address for s in ordered],
        [s.entry_page for s in ordered],
        [s.exit_page for s in ordered],
        [s.device_type for s in ordered],
        [s.country for s in ordered],
    ]
    columns.extend([s.type_counts.get(t, 0) for s in ordered] for t in COUNTED_TYPES)
    return columns
