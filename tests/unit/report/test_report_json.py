"""--json: money as exact decimal strings with two places everywhere; numbers stay numbers."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from report_sample import sample_report

from clickstream_ops.report.queries import MONEY_COLUMNS
from clickstream_ops.report.render import to_json

MONEY = re.compile(r"^-?[0-9]+\.[0-9]{2}$")


def _money(document: Any, key: str | None = None) -> list[Any]:
    if isinstance(document, list):
        return [v for item in document for v in _money(item, key)]
    if isinstance(document, dict):
        return [v for k, item in document.items() for v in _money(item, k)]
    return [document] if key in MONEY_COLUMNS else []


def test_every_money_value_is_a_two_place_string() -> None:
    document = json.loads(to_json(sample_report()))
    money = _money(document)
    assert len(money) > 50
    assert all(isinstance(v, str) and MONEY.match(v) for v in money)
    assert document["totals"]["total_revenue"] == "10500.00"
    assert document["sessions"]["active"]["revenue"] == "67.90"
    assert document["latest_finished_sessions"][0]["total_revenue"] == "0.00"


def test_other_numbers_stay_numbers_and_times_are_iso() -> None:
    document = json.loads(to_json(sample_report(pending=2, oldest_age_s=75.5)))
    assert document["funnel"][1]["share_of_sessions"] == 0.5
    assert document["funnel"][0]["conversion_from_previous"] is None
    assert document["sessions"]["finished"]["sessions"] == 812
    assert document["generated_at"] == "2026-12-01T15:30:12+00:00"
    assert document["active_after_minutes"] == 30
    assert document["dead_letters_pending"]["oldest_age_seconds"] == 75.5
    assert document["dead_letters_pending"]["oldest"] == "2026-12-01T15:28:56.500000+00:00"


@given(st.decimals(min_value=-(10**12), max_value=10**12, places=2, allow_nan=False))
def test_money_keeps_every_cent(amount: Decimal) -> None:
    report = sample_report()
    report.totals["total_revenue"] = amount
    assert Decimal(json.loads(to_json(report))["totals"]["total_revenue"]) == amount


def test_money_that_is_missing_stays_null() -> None:
    report = sample_report()
    report.totals["total_revenue"] = None  # SUM over no sessions
    assert json.loads(to_json(report))["totals"]["total_revenue"] is None
