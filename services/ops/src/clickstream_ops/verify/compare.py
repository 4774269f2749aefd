"""One stored session row against the row recomputed from the topic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from clickstream_ops.verify.fold import COLUMNS, SETS

_SETS = tuple(name for name, _, _ in SETS)


@dataclass(frozen=True, slots=True)
class Verdict:
    #: columns that differ, in :data:`COLUMNS` order (empty: the rows are equal)
    columns: tuple[str, ...]
    #: every difference is explained by stored events outside what was read
    covered: bool
    #: events missing from / counted beyond the stored row
    lost: int
    counted_twice: int


def _same(column: str, want: Any, got: Any) -> bool:
    if column == "session_duration_minutes":
        return bool(abs(want - got) <= 1e-9 * max(1.0, abs(want)))
    return bool(want == got)


def covers(want: dict[str, Any], got: dict[str, Any]) -> bool:
    """Does the stored row contain at least the recomputed events (and maybe more)?"""
    counts_ok = all(
        got["event_type_counts"].get(kind, 0) >= n for kind, n in want["event_type_counts"].items()
    )
    return (
        counts_ok
        and got["total_events"] >= want["total_events"]
        and got["first_event_timestamp"] <= want["first_event_timestamp"]
        and got["last_event_timestamp"] >= want["last_event_timestamp"]
        and got["total_revenue"] >= want["total_revenue"]
        and all(set(got[c]) >= set(want[c]) for c in _SETS)
    )


def compare(want: dict[str, Any], got: dict[str, Any]) -> Verdict:
    columns = tuple(c for c in COLUMNS if not _same(c, want[c], got[c]))
    delta = int(got["total_events"]) - int(want["total_events"])
    return Verdict(
        columns=columns,
        covered=bool(columns) and covers(want, got),
        lost=max(0, -delta),
        counted_twice=max(0, delta),
    )


def describe(
    session_id: str, want: dict[str, Any], got: dict[str, Any], columns: tuple[str, ...]
) -> str:
    first = columns[0]
    more = f" (and {len(columns) - 1} more: {', '.join(columns[1:4])})" if len(columns) > 1 else ""
    shown_want, shown_got = shown(want[first]), shown(got[first])
    return f"{session_id}: {first} expected {shown_want}, stored {shown_got}{more}"


def shown(value: Any) -> str:
    """A value as a person reads it: money as ``$1,234.50``, times in ISO 8601."""
    if isinstance(value, Decimal):  # the only Decimal column is total_revenue
        return f"${value:,.2f}"
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)
