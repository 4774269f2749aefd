"""The bench's table and JSON: units, targets, the met column, missing figures (pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import orjson
from rich.console import Console

from clickstream_devstack.bench.results import Figure, Machine, Results, Target
from clickstream_devstack.bench.table import build_table, format_target, format_value, render

MACHINE = Machine(
    cores=2,
    ram_gb=24.1,
    python="3.11.7",
    platform="Linux",
    cpu="test cpu",
    load_average=(0.5, 0.4, 0.3),
)


def test_values_carry_their_unit() -> None:
    assert format_value(52_310.4, "events/s") == "52,310 events/s"
    assert format_value(0.4321, "×") == "0.43 ×"
    assert format_value(8.46, "ms") == "8.5 ms"
    assert format_value(1234.5, "ms") == "1,234 ms"
    assert format_value(182.2, "MB") == "182 MB"


def test_missing_value_is_a_dash() -> None:
    assert format_value(math.nan, "events/s") == "–"


def test_targets_render_with_symbol_and_unit() -> None:
    assert format_target(Target(">=", 50_000), "events/s") == "≥ 50,000 events/s"
    assert format_target(Target("<", 300), "MB") == "< 300 MB"
    assert format_target(None, "ms") == ""


def test_derived_target_shows_its_rule_and_value() -> None:
    target = Target(">=", 40_000, note="0.8 × 1 replica")
    assert format_target(target, "events/s") == "≥ 0.8 × 1 replica (40,000 events/s)"


def test_met_compares_in_the_stated_direction() -> None:
    assert Target(">=", 10).met(10) is True
    assert Target(">=", 10).met(9.9) is False
    assert Target("<=", 1000).met(1000) is True
    assert Target("<", 300).met(300) is False
    assert Target("<", 300).met(math.nan) is None


def test_figure_without_target_has_no_verdict() -> None:
    figure = Figure("bare", "aggregator", "bare consumer", 1.0, "events/s")
    assert figure.met is None


def test_table_names_each_scenario_once() -> None:
    figures = [
        Figure("a", "aggregator", "1 replica", 10.0, "events/s", Target(">=", 5)),
        Figure("b", "aggregator", "3 replicas", 20.0, "events/s"),
        Figure("c", "freshness", "p99", 900.0, "ms", Target("<=", 1000)),
    ]
    table = build_table(figures, "t")
    assert list(table.columns[0].cells) == ["aggregator", "", "freshness"]
    assert list(table.columns[2].cells) == ["10 events/s", "20 events/s", "900 ms"]


def test_render_prints_machine_and_every_figure() -> None:
    results = Results("quick", MACHINE, {}, started=datetime(2026, 1, 2, tzinfo=UTC))
    results.add(Figure("p", "producer", "acknowledged", 51_000.0, "events/s", Target(">=", 50_000)))
    console = Console(record=True, width=200)
    render(results, console)
    text = console.export_text()
    assert "2 cores" in text
    assert "24.1 GB RAM" in text
    assert "Python 3.11.7" in text
    assert "51,000 events/s" in text
    assert "yes" in text


def test_json_document_keeps_missing_figures_as_null(tmp_path: Path) -> None:
    results = Results("full", MACHINE, {"events": 10}, started=datetime(2026, 1, 2, tzinfo=UTC))
    results.add(Figure("r", "aggregator", "ratio", math.nan, "×", Target(">=", 0.4)))
    path = tmp_path / "out" / "results.json"
    results.write(path)
    document = orjson.loads(path.read_bytes())
    assert document["date"] == "2026-01-02T00:00:00+00:00"
    assert document["machine"]["cores"] == 2
    [figure] = document["figures"]
    assert figure["value"] is None
    assert figure["met"] is None
    assert figure["target"] == {"comparison": ">=", "threshold": 0.4, "note": ""}


def test_lower_bound_can_only_break_an_upper_limit() -> None:
    over = Figure("p99", "f", "p99", 2000.0, "ms", Target("<=", 1000), lower_bound=True)
    under = Figure("p99", "f", "p99", 500.0, "ms", Target("<=", 1000), lower_bound=True)
    assert over.met is False
    assert under.met is None  # the true value may still exceed the limit


def test_lower_bound_is_shown_as_such() -> None:
    figure = Figure("p99", "freshness", "p99", 2000.0, "ms", lower_bound=True)
    table = build_table([figure], "t")
    assert list(table.columns[2].cells) == ["≥ 2,000 ms"]
