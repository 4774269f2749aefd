"""clickstream-verify's words: times as docs/verify.md lists them, money as money."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from clickstream_ops.verify.compare import describe
from clickstream_ops.verify.main import _parse
from clickstream_ops.verify.times import TimeError, parse_time

NOW = datetime(2026, 12, 4, 22, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 12, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T10:00Z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T11:00:00+01:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("now", NOW),
        ("today", MIDNIGHT),
        ("yesterday", MIDNIGHT - timedelta(days=1)),
        ("Yesterday", MIDNIGHT - timedelta(days=1)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2h", NOW - timedelta(hours=2)),
        ("3d ago", NOW - timedelta(days=3)),
    ],
)
def test_the_documented_forms(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["last week", "2026-12-01T10:00", "12/01/2026", "-2h"])
def test_anything_else_says_which_forms_work(text: str) -> None:
    with pytest.raises(TimeError, match="yesterday, or an age such as 90m, 2h or 3d"):
        parse_time(text, NOW)


def test_a_bad_value_names_the_flag_not_a_function(capsys: pytest.CaptureFixture[str]) -> None:
    # It once said "argument --since: invalid _time value: 'last week'".
    with pytest.raises(SystemExit) as exited:
        _parse(["--since", "last week"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --since: 'last week' is not a time: use an ISO 8601 time" in err
    assert "_time" not in err
    assert _parse(["--since", "yesterday"]).since is not None
    assert isinstance(_parse(["--until", "2h"]).until, datetime)


def test_a_revenue_difference_reads_as_money() -> None:
    # It once said "expected Decimal('0.00'), stored Decimal('0.01')".
    said = describe(
        "s-1",
        {"total_revenue": Decimal("1234.5")},
        {"total_revenue": Decimal("0.01")},
        ("total_revenue",),
    )
    assert said == "s-1: total_revenue expected $1,234.50, stored $0.01"
    at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    said = describe("s-2", {"first_event_timestamp": at}, {"first_event_timestamp": at}, (
        "first_event_timestamp",
    ))  # fmt: skip
    assert "expected 2026-12-01T10:00:00+00:00" in said
