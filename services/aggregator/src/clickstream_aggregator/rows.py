"""The one column specification of the ``session_metrics`` upsert.

:data:`UPSERT_COLUMNS` drives everything that must agree on columns: the row
builder below (one array per column, for ``unnest``), the ``unnest`` array
types and the column lists of the SQL in :mod:`clickstream_aggregator.repository`
(whose merge rule per column is checked against this list at import).

Pure (no database import) so that worker processes can build the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final

import orjson

from clickstream_aggregator.aggregate import SessionAggregate
from clickstream_schema import EventType

#: Event types with a counter column in ``session_metrics`` (``<type>_count``).
COUNTED_TYPES: Final = tuple(t.value for t in EventType)


@dataclass(frozen=True, slots=True)
class Column:
    """One upserted column: its name, its ``unnest`` element type and how to read it."""

    name: str
    #: Element type of the ``unnest`` array parameter.
    array_type: str
    value: Callable[[SessionAggregate], Any]
    #: Cast from the parameter's type to the column's, when they differ (JSON text → jsonb).
    cast: str | None = None


def _sorted_json(values: Iterable[str]) -> str:
    return orjson.dumps(sorted(values)).decode()


def _counter(kind: str) -> Column:
    return Column(f"{kind}_count", "int", lambda s: s.type_counts.get(kind, 0))


UPSERT_COLUMNS: Final[tuple[Column, ...]] = (
    Column("session_id", "text", lambda s: s.session_id),
    Column("user_id", "text", lambda s: s.user_id),
    Column("total_events", "int", lambda s: s.total_events),
    Column("first_event_timestamp", "timestamptz", lambda s: s.first_ts),
    Column("last_event_timestamp", "timestamptz", lambda s: s.last_ts),
    Column("unique_pages", "text", lambda s: _sorted_json(s.pages), "jsonb"),
    Column("total_revenue", "numeric", lambda s: s.revenue),
    Column("products_viewed", "text", lambda s: _sorted_json(s.products), "jsonb"),
    Column("search_queries", "text", lambda s: orjson.dumps(s.search_queries).decode(), "jsonb"),
    Column("referrers", "text", lambda s: _sorted_json(s.referrers), "jsonb"),
    Column("user_agent", "text", lambda s: s.user_agent),
    Column("ip_address", "text", lambda s: s.ip_address, "inet"),
    Column("entry_page", "text", lambda s: s.entry_page),
    Column("exit_page", "text", lambda s: s.exit_page),
    Column("device_type", "text", lambda s: s.device_type),
    Column("country", "text", lambda s: s.country),
    *(_counter(kind) for kind in COUNTED_TYPES),
)

#: Column arrays of a batch: one list per entry of :data:`UPSERT_COLUMNS`, rows in session order.
SessionRows = list[list[Any]]


def session_columns(sessions: Iterable[SessionAggregate]) -> SessionRows:
    """Column arrays for the upsert, one list per ``unnest`` argument, in session order.

    Sorted by ``session_id`` so that concurrent transactions lock rows in the
    same order and cannot deadlock.
    """
    ordered = sorted(sessions, key=_BY_ID)
    return [list(map(column.value, ordered)) for column in UPSERT_COLUMNS]


_BY_ID: Final = attrgetter("session_id")
