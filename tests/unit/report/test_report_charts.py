"""Sparklines and durations as the report draws and writes them."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from clickstream_ops.report.charts import bar, sparkline
from clickstream_ops.report.formats import money, seconds


def test_sparkline_scale_starts_at_zero() -> None:
    assert sparkline([0, 0, 0], 10) == "▁▁▁"  # a quiet minute looks quiet
    assert sparkline([0, 8], 10) == "▁█"
    assert sparkline([7, 8], 10) == "▇█"  # not stretched to fill the range


def test_sparkline_shows_the_latest_values_that_fit() -> None:
    assert sparkline([8, 0, 0, 8], 2) == "▁█"
    assert sparkline([], 5) == ""
    assert sparkline([1, 2], 0) == ""


def test_sparkline_leaves_gaps_for_missing_values() -> None:
    assert sparkline([None, 8, None], 5) == " █ "
    assert sparkline([None, None], 5) == "  "


def test_bar_is_proportional() -> None:
    out = io.StringIO()
    Console(file=out, width=20, color_system=None).print(bar(5, 10, 10))
    assert out.getvalue().rstrip("\n") == "█████     "


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"), (0.42, "0.4 s"), (12.4, "12 s"), (59.6, "1 min 0 s"), (61, "1 min 1 s"),
        (3_700, "1 h 1 min"), (90_000, "1 d 1 h"), (-2.5, "-2.5 s"),
    ],
)  # fmt: skip
def test_seconds(value: float | None, text: str) -> None:
    assert seconds(value) == text


def test_money_is_exact() -> None:
    from decimal import Decimal

    assert money(Decimal("1234567.10")) == "$1,234,567.10"
    assert money(None) == "–"


def test_hours_without_sessions_are_charted_as_zero() -> None:
    from datetime import UTC, datetime, timedelta

    from clickstream_ops.report.charts import every_hour

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"hour": t0, "sessions": 5}, {"hour": t0 + timedelta(hours=3), "sessions": 7}]
    assert [r["sessions"] for r in every_hour(rows, 10)] == [5, 0, 0, 7]
    assert [r["sessions"] for r in every_hour(rows, 2)] == [0, 7]
    # Years apart: only the hours that can be shown are built.
    far = [{"hour": t0 - timedelta(days=3650), "sessions": 1}, *rows]
    assert len(every_hour(far, 40)) == 40
