"""The one specification of the ``session_metrics`` columns.

Every column the aggregator writes is one :class:`Column` in :data:`UPSERT_COLUMNS`:
how to read it off a session's aggregate (the row builder, :func:`session_rows`),
the JSON kind it travels as (text, integer or a JSON array), the SQL that turns
its value into the column's, and the SQL rule that merges a batch's value into
the stored row (the repository builds its statement from these). The
counter columns derive from ``EventType``; the set-valued metrics from
:data:`DISTINCT_SETS`, which the fold in :mod:`clickstream_aggregator.aggregate`
reads too. The columns PostgreSQL computes itself are :data:`GENERATED_COLUMNS`.

Adding a metric is one entry here plus one migration that adds its column (and
the verifier's own fold, which is independent on purpose, plus tests and docs).
A test checks this list against the verifier's columns.

Pure (no database import) so that worker processes can build the rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

import orjson

from clickstream_schema import EventType

if TYPE_CHECKING:
    from clickstream_aggregator.aggregate import SessionAggregate

#: Queries kept per session in ``search_queries`` (the rest are only counted).
MAX_SEARCH_QUERIES: Final = 100

#: Event types with a counter column in ``session_metrics`` (``<type>_count``).
COUNTED_TYPES: Final = tuple(t.value for t in EventType)

#: Set-valued metrics: column → the event field whose distinct values it keeps
#: (a ``None`` value is not kept). Stored as a JSON array sorted by code point.
DISTINCT_SETS: Final = (
    ("unique_pages", "page_url"),
    ("products_viewed", "product_id"),
    ("referrers", "referrer"),
)

#: Columns PostgreSQL derives from the stored ones (``GENERATED ALWAYS``, see the migrations).
GENERATED_COLUMNS: Final = (
    "event_type_counts",
    "session_duration_minutes",
    "unique_pages_count",
    "products_viewed_count",
    "unique_referrers_count",
    "bounced",
    "converted",
)


@dataclass(frozen=True, slots=True)
class Column:
    """One upserted column: its name, how it travels, how to read it and merge it."""

    name: str
    #: What its value is in the row's JSON: one of :data:`KINDS`.
    kind: str
    value: Callable[[SessionAggregate], Any]
    #: The merged value in SQL: ``s`` is the stored row, ``EXCLUDED`` the batch's.
    merge: str
    #: The column's value from the one read out of the JSON, when that one's
    #: type is not the column's ({} is the value read).
    sql: str = "{}"


#: How a row's JSON holds a column, and the SQL type it is read out as: a
#: string (or null), an integer, or a JSON array (kept as ``jsonb``).
KINDS: Final = ("text", "int8", "jsonb")


def _earliest(column: str) -> str:
    # Attributes of the earliest event: an equal timestamp keeps the stored
    # value, which was consumed first.
    return (
        f"CASE WHEN EXCLUDED.first_event_timestamp < s.first_event_timestamp "
        f"THEN EXCLUDED.{column} ELSE s.{column} END"
    )


def _union(column: str) -> str:
    # Most batches add nothing new to a session's sets (same referrer, revisited
    # pages): containment is a cheap C check that skips the merge.
    return (
        f"CASE WHEN s.{column} @> EXCLUDED.{column} THEN s.{column} "
        f'ELSE (SELECT jsonb_agg(DISTINCT v COLLATE "C" ORDER BY v COLLATE "C") '
        f"FROM jsonb_array_elements_text(s.{column} || EXCLUDED.{column}) AS t(v)) END"
    )


def _sum(column: str) -> str:
    return f"s.{column} + EXCLUDED.{column}"


#: Timestamps and revenue travel as integers: the driver encodes an int several
#: times faster than a datetime or a Decimal, and PostgreSQL converts them exactly
#: (microseconds within the contract's years stay below 2**53, so the float
#: arithmetic of ``interval * int8`` is exact).
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_INSTANT: Final = "'epoch'::timestamptz + {} * interval '1 microsecond'"


def _microseconds(instant: datetime) -> int:
    return (instant - _EPOCH) // _MICROSECOND


def _cents(amount: Decimal) -> int:
    # Prices have at most two decimal places (the contract), so sums do too.
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():
        raise ValueError(f"revenue {amount} has more than two decimal places")
    return int(cents)


def _attribute(name: str, field: str | None = None) -> Column:
    """An attribute of the session's earliest event."""
    return Column(name, "text", attrgetter(field or name), _earliest(name))


def _distinct(index: int, name: str) -> Column:
    def value(s: SessionAggregate) -> list[str]:
        return sorted(s.sets[index])

    return Column(name, "jsonb", value, _union(name))


def _counter(kind: str) -> Column:
    name = f"{kind}_count"
    return Column(name, "int8", lambda s: s.type_counts.get(kind, 0), _sum(name))


UPSERT_COLUMNS: Final[tuple[Column, ...]] = (
    Column("session_id", "text", attrgetter("session_id"), "s.session_id"),
    _attribute("user_id"),
    Column("total_events", "int8", attrgetter("total_events"), _sum("total_events")),
    Column(
        "first_event_timestamp",
        "int8",
        lambda s: _microseconds(s.first_ts),
        "LEAST(s.first_event_timestamp, EXCLUDED.first_event_timestamp)",
        _INSTANT,
    ),
    Column(
        "last_event_timestamp",
        "int8",
        lambda s: _microseconds(s.last_ts),
        "GREATEST(s.last_event_timestamp, EXCLUDED.last_event_timestamp)",
        _INSTANT,
    ),
    Column(
        "total_revenue",
        "int8",
        lambda s: _cents(s.revenue),
        _sum("total_revenue"),
        "{} * 0.01",  # numeric: exact, two decimal places
    ),
    *(_distinct(i, name) for i, (name, _) in enumerate(DISTINCT_SETS)),
    Column(
        "search_queries",
        "jsonb",
        attrgetter("search_queries"),
        # The first MAX_SEARCH_QUERIES queries in consumption order; later ones
        # are only counted (search_count).
        f"CASE WHEN jsonb_array_length(s.search_queries) >= {MAX_SEARCH_QUERIES} "
        "THEN s.search_queries ELSE jsonb_path_query_array("
        f"s.search_queries || EXCLUDED.search_queries, '$[0 to {MAX_SEARCH_QUERIES - 1}]') END",
    ),
    _attribute("user_agent"),
    Column("ip_address", "text", attrgetter("ip_address"), _earliest("ip_address"), "{}::inet"),
    _attribute("entry_page"),
    Column(
        "exit_page",
        "text",
        attrgetter("exit_page"),
        # the exit page is the latest event's; on a tie the later consumed one
        "CASE WHEN EXCLUDED.last_event_timestamp >= s.last_event_timestamp "
        "THEN EXCLUDED.exit_page ELSE s.exit_page END",
    ),
    _attribute("device_type"),
    _attribute("country"),
    *(_counter(kind) for kind in COUNTED_TYPES),
)

#: Every column of ``session_metrics``: upserted, generated, and the upsert's timestamp.
TABLE_COLUMNS: Final = (*(c.name for c in UPSERT_COLUMNS), *GENERATED_COLUMNS, "updated_at")

assert {c.kind for c in UPSERT_COLUMNS} <= set(KINDS), "a column of no kind"


@dataclass(frozen=True, slots=True)
class SessionRows:
    """A batch's session rows as one JSON array, sorted by ``session_id``.

    A row is the :data:`UPSERT_COLUMNS` values in order. One document, written
    by orjson (in C) where the batch is prepared, a decode worker as a rule: it
    crosses back to the service as one bytes object and reaches PostgreSQL as
    one parameter, which the driver copies instead of encoding every value, and
    PostgreSQL parses it once (``repository.batch_writes``).
    """

    json: bytes = b"[]"
    count: int = 0

    def rows(self) -> list[list[Any]]:
        """The rows, decoded (for merging results and for tests)."""
        rows: list[list[Any]] = orjson.loads(self.json)
        return rows


def session_rows(sessions: Iterable[SessionAggregate]) -> SessionRows:
    """The rows for the upsert, in session order.

    Sorted by ``session_id``: the order new rows are inserted in, so that
    concurrent transactions wait for each other there rather than deadlock
    (stored rows are locked in the order the planner's join meets them; see
    :mod:`clickstream_aggregator.repository`).
    """
    ordered = sorted(sessions, key=_BY_ID)
    return rows_json([[value(session) for value in _GETTERS] for session in ordered])


def rows_json(rows: list[list[Any]]) -> SessionRows:
    """``rows`` (in order) as :class:`SessionRows`."""
    try:
        document = orjson.dumps(rows)
    except TypeError as error:
        if "64-bit" not in str(error):
            raise
        # An integer beyond 64 bits (orjson's limit): written out all the same,
        # for PostgreSQL to refuse as out of its column's range.
        document = json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode()
    return SessionRows(document, len(rows))


def joined(parts: Iterable[SessionRows]) -> SessionRows | None:
    """The rows of ``parts`` as one, in session order; ``None`` if two share a session."""
    rows = [row for part in parts for row in part.rows()]
    at = _POSITION["session_id"]
    if len({row[at] for row in rows}) != len(rows):
        return None
    rows.sort(key=lambda row: row[at])
    return rows_json(rows)


def column_values(rows: SessionRows, name: str) -> list[Any]:
    """One column's values in ``rows``, in session order."""
    at = _POSITION[name]
    return [row[at] for row in rows.rows()]


_GETTERS: Final = tuple(c.value for c in UPSERT_COLUMNS)
_POSITION: Final = {c.name: at for at, c in enumerate(UPSERT_COLUMNS)}
_BY_ID: Final = attrgetter("session_id")
