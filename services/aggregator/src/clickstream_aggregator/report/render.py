"""How the report looks: rich tables for people, one JSON document for programs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from clickstream_aggregator.report.queries import Report, Row

Formatter = Callable[[Any], str]


def to_json(report: Report) -> str:
    """The report's data as JSON: numbers stay numbers, times are ISO 8601."""
    return json.dumps(report.sections(), default=_json_default, sort_keys=False)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        # NUMERIC from PostgreSQL (sums, averages, rounded rates): a JSON number.
        # Whole numbers without a fraction part stay integers.
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _number(value: Any, places: int = 2) -> str:
    return "–" if value is None else f"{float(value):,.{places}f}"


def _integer(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def _rate(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1%}"


def _money(value: Any) -> str:
    return "–" if value is None else f"${float(value):,.2f}"


def _hour(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:00Z") if isinstance(value, datetime) else str(value)


def _counts(value: Any) -> str:
    if not isinstance(value, dict):
        return str(value)
    return ", ".join(f"{name} {count}" for name, count in sorted(value.items()))


def _table(title: str, rows: Sequence[Row], columns: Sequence[tuple[str, str, Formatter]]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for _, header, formatter in columns:
        numeric = formatter in (_number, _integer, _rate, _money)
        table.add_column(header, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(formatter(row.get(key)) for key, _, formatter in columns))
    if not rows:
        table.caption = "no rows yet"
    return table


def tables(report: Report) -> Group:
    totals = report.totals
    return Group(
        _table(
            "Totals",
            [totals],
            [
                ("total_sessions", "sessions", _integer),
                ("avg_events_per_session", "avg events", _number),
                ("total_revenue", "revenue", _money),
                ("avg_session_duration", "avg duration (min)", _number),
            ],
        ),
        _table(
            "Latest sessions",
            report.latest_sessions,
            [
                ("session_id", "session", str),
                ("user_id", "user", str),
                ("total_events", "events", _integer),
                ("session_duration_minutes", "minutes", _number),
                ("total_revenue", "revenue", _money),
                ("event_type_counts", "event types", _counts),
            ],
        ),
        _table(
            "Funnel",
            report.funnel,
            [
                ("step", "step", str),
                ("sessions", "sessions", _integer),
                ("share_of_sessions", "of all sessions", _rate),
                ("conversion_from_previous", "from previous step", _rate),
            ],
        ),
        _table(
            "Top pages (views = sessions that viewed the page)",
            report.top_pages,
            [
                ("page", "page", str),
                ("views", "views", _integer),
                ("entries", "entries", _integer),
                ("exits", "exits", _integer),
                ("bounce_rate", "bounce rate", _rate),
                ("exit_rate", "exit rate", _rate),
            ],
        ),
        _table(
            "Hourly traffic (UTC, by session start)",
            report.hourly_traffic,
            [
                ("hour", "hour", _hour),
                ("sessions", "sessions", _integer),
                ("events", "events", _integer),
                ("revenue", "revenue", _money),
                ("conversion_rate", "conversion", _rate),
                ("bounce_rate", "bounce rate", _rate),
            ],
        ),
        _table(
            "Devices",
            report.device_summary,
            [
                ("device_type", "device", str),
                ("sessions", "sessions", _integer),
                ("avg_events", "avg events", _number),
                ("avg_duration_minutes", "avg minutes", _number),
                ("conversion_rate", "conversion", _rate),
                ("revenue", "revenue", _money),
            ],
        ),
        _table(
            "Dead-lettered messages",
            report.dead_letters,
            [
                ("reason", "reason", str),
                ("messages", "messages", _integer),
                ("not_relayed", "not yet on the DLQ topic", _integer),
                ("latest", "latest", lambda v: v.isoformat(timespec="seconds") if v else "–"),
            ],
        ),
    )


def print_report(console: Console, report: Report) -> None:
    console.print(tables(report))
