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
_SUMMARY_WIDTH = 28


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


def _chart_row(
    grid: Table, label: str, values: Sequence[float | None], summary: str, width: int
) -> None:
    line = sparkline(values, width)
    grid.add_row(Text(label, style="bold"), Text(line, style="cyan"), Text(summary, style="dim"))


def section(report: Report, width: int) -> RenderableType:
    """Sparklines of events per minute, freshness, sessions and revenue per hour."""
    # Label and summary keep their widths down to 80 columns; below, all three shrink.
    room = max(0, width - 2)  # two single-space gaps
    spark = max(8, room - _LABEL_WIDTH - _SUMMARY_WIDTH)
    label_width = max(8, (room - spark) * _LABEL_WIDTH // (_LABEL_WIDTH + _SUMMARY_WIDTH))
    summary_width = max(8, room - spark - label_width)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=label_width, no_wrap=True, overflow="ellipsis")
    grid.add_column(width=spark, no_wrap=True)
    grid.add_column(width=summary_width, no_wrap=True, overflow="ellipsis")

    per_minute = [float(r["events"]) for r in report.events_per_minute]
    minutes = min(spark, len(per_minute))
    shown = per_minute[-minutes:] if minutes else []
    now = fmt.integer(shown[-1]) if shown else fmt.DASH
    _chart_row(
        grid, f"Events/min, last {minutes} min", per_minute,
        f"this min {now} · peak {fmt.integer(max(shown, default=0))}",
        spark,
    )  # fmt: skip

    fresh = report.freshness_per_minute[-minutes:] if minutes else []
    lags = [r["p50_seconds"] for r in fresh]
    written = [r for r in fresh if r["sessions"]]
    latest = written[-1] if written else None
    _chart_row(
        grid, "Freshness p50, event→row written", lags,
        (
            f"last {fmt.seconds(latest['p50_seconds'])} · max {fmt.seconds(latest['max_seconds'])}"
            if latest else f"no rows written in {minutes} min"
        ),
        spark,
    )  # fmt: skip

    hours = every_hour(report.hourly_traffic, spark)
    _chart_row(
        grid, f"Sessions/hour by start, {len(hours)} h", [float(r["sessions"]) for r in hours],
        f"peak {fmt.integer(max((r['sessions'] for r in hours), default=0))}",
        spark,
    )  # fmt: skip
    revenue = [Decimal(r["revenue"]) + Decimal(r["active_revenue"]) for r in hours]
    _chart_row(
        grid, f"Revenue/hour, all sessions, {len(hours)} h", [float(v) for v in revenue],
        f"total {fmt.money(sum(revenue, Decimal('0.00')))}",
        spark,
    )  # fmt: skip
    return grid


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
