"""Charts: bars from rich, sparklines from the sparklines package, and the report's
section of sparklines (events per minute, freshness, sessions and revenue per hour)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from rich.bar import Bar
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from sparklines import sparklines  # type: ignore[import-untyped]

from clickstream_aggregator.report import formats as fmt
from clickstream_aggregator.report.queries import Report, Row

_LABEL_WIDTH = 32


def sparkline(values: Sequence[float | None], width: int) -> str:
    """The last ``width`` values as one line of block characters; None is a gap.

    The scale starts at zero (so a quiet minute looks quiet, not average) and
    a series of zeros stays at the bottom line.
    """
    shown = list(values)[-width:] if width > 0 else []
    present = [v for v in shown if v is not None]
    if not present:
        return " " * len(shown)
    low = min(0.0, *present)
    high = max(present)
    if high <= low:
        high = low + 1
    [line] = sparklines(shown, minimum=low, maximum=high)
    return str(line)


def bar(value: float | None, maximum: float, width: int, color: str = "cyan") -> Bar:
    """A horizontal bar, ``value`` out of ``maximum``, ``width`` cells wide."""
    size = maximum if maximum > 0 else 1
    return Bar(size=size, begin=0, end=max(0.0, value or 0.0), width=width, color=color)


ChartRow = tuple[str, Sequence[float | None], str]  # label, values, summary


def section(report: Report, width: int) -> RenderableType:
    """Sparklines of events per minute, freshness, sessions and revenue per hour.

    The summaries (numbers) are never cut: their column is as wide as the
    longest one needs, measured over all the data (a window's peak and total
    are at most the whole series'), and the sparklines and then the labels
    give way. Only on a terminal too narrow for even 8-cell sparklines and
    labels does a summary end in an ellipsis.
    """
    room = max(0, width - 2)  # two single-space gaps
    summary_width = max(len(summary) for _, _, summary in _rows(report, 10**6))
    label_width = min(_LABEL_WIDTH, max(8, room - 8 - summary_width))
    spark = max(8, room - label_width - summary_width)
    summary_width = max(8, min(summary_width, room - spark - label_width))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=label_width, no_wrap=True, overflow="ellipsis")
    grid.add_column(width=spark, no_wrap=True)
    grid.add_column(width=summary_width, no_wrap=True, overflow="ellipsis")
    for label, values, summary in _rows(report, spark):
        grid.add_row(
            Text(label, style="bold"),
            Text(sparkline(values, spark), style="cyan"),
            Text(summary, style="dim"),
        )
    return grid


def _rows(report: Report, spark: int) -> list[ChartRow]:
    """The four charts' labels, series and summaries for sparklines ``spark`` cells wide."""
    per_minute = [float(r["events"]) for r in report.events_per_minute]
    minutes = min(spark, len(per_minute))
    shown = per_minute[-minutes:] if minutes else []
    now = fmt.integer(shown[-1]) if shown else fmt.DASH
    rows: list[ChartRow] = [
        (
            f"Events/min, last {minutes} min",
            per_minute,
            f"this min {now} · peak {fmt.integer(max(shown, default=0))}",
        )
    ]
    fresh = report.freshness_per_minute[-minutes:] if minutes else []
    written = [r for r in fresh if r["sessions"]]
    latest = written[-1] if written else None
    rows.append(
        (
            "Freshness p50, event→row written",
            [r["p50_seconds"] for r in fresh],
            f"last {fmt.seconds(latest['p50_seconds'])} · max {fmt.seconds(latest['max_seconds'])}"
            if latest
            else f"no rows written in {minutes} min",
        )
    )
    hours = every_hour(report.hourly_traffic, spark)
    rows.append(
        (
            f"Sessions/hour by start, {len(hours)} h",
            [float(r["sessions"]) for r in hours],
            f"peak {fmt.integer(max((r['sessions'] for r in hours), default=0))}",
        )
    )
    revenue = [Decimal(r["revenue"]) + Decimal(r["active_revenue"]) for r in hours]
    rows.append(
        (
            f"Revenue/hour, all sessions, {len(hours)} h",
            [float(v) for v in revenue],
            f"total {fmt.money(sum(revenue, Decimal('0.00')))}",
        )
    )
    return rows


def every_hour(rows: Sequence[Row], most: int) -> list[Row]:
    """The last ``most`` hours up to the newest row, the empty ones included.

    The view has rows only for hours in which sessions started.
    """
    if not rows:
        return []
    by_hour = {r["hour"]: r for r in rows}
    newest: datetime = rows[-1]["hour"]
    span = int((newest - rows[0]["hour"]) / timedelta(hours=1)) + 1
    empty = {"sessions": 0, "revenue": Decimal("0.00"), "active_revenue": Decimal("0.00")}
    hours = [newest - timedelta(hours=back) for back in reversed(range(min(span, most)))]
    return [by_hour.get(hour, {"hour": hour, **empty}) for hour in hours]
