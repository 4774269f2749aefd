"""The bench's cost per event: interpolation over the window, process-tree CPU, the figures."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import psutil
import pytest

from clickstream_devstack.bench import figures
from clickstream_devstack.bench.bare import BareRun
from clickstream_devstack.bench.costs import Costs, growth, tree_cpu_seconds, value_at
from clickstream_devstack.bench.scenarios import AggregatorRun
from clickstream_devstack.bench.table import format_value

SERIES = [(10.0, 0.0), (11.0, 2.0), (13.0, 3.0)]


def test_value_at_interpolates_between_samples_and_hits_them_exactly() -> None:
    assert value_at(SERIES, 10.0) == 0.0
    assert value_at(SERIES, 10.5) == pytest.approx(1.0)
    assert value_at(SERIES, 11.0) == 2.0
    assert value_at(SERIES, 12.0) == pytest.approx(2.5)
    assert value_at(SERIES, 13.0) == 3.0


def test_a_moment_the_samples_do_not_cover_has_no_value() -> None:
    assert math.isnan(value_at(SERIES, 9.99))
    assert math.isnan(value_at(SERIES, 13.01))
    assert math.isnan(value_at([], 1.0))


def test_growth_over_a_window_inside_the_samples() -> None:
    assert growth(SERIES, 10.5, 12.0) == pytest.approx(1.5)
    assert math.isnan(growth(SERIES, 9.0, 12.0))


def test_costs_divide_the_window_by_the_events_it_covers() -> None:
    cpu = {
        # 2 CPU seconds of aggregator and 0.5 of PostgreSQL between t=1 and t=3
        "aggregator": [(0.0, 0.0), (1.0, 1.0), (3.0, 3.0), (4.0, 3.5)],
        "postgres": [(0.0, 0.0), (1.0, 0.25), (3.0, 0.75), (4.0, 0.8)],
    }
    wal = [(0.5, 1_000.0), (3.5, 301_000.0)]  # 100 kB/s of WAL
    costs = Costs.measure(cpu, wal, start=1.0, end=3.0, events=100_000, total=120_000)
    assert costs.aggregator_cpu_us == pytest.approx(20.0)
    assert costs.postgres_cpu_us == pytest.approx(5.0)
    assert costs.wal_bytes == pytest.approx(2.0)
    # The whole run: the last sample over every message of the topic.
    assert costs.aggregator_cpu_us_with_startup == pytest.approx(3.5e6 / 120_000)


def test_no_events_in_the_window_is_no_figure_rather_than_an_error() -> None:
    costs = Costs.measure(
        {"aggregator": [(0.0, 1.0)], "postgres": [(0.0, 1.0)]},
        [],
        start=0.0,
        end=0.0,
        events=0,
        total=0,
    )
    assert math.isnan(costs.aggregator_cpu_us)
    assert math.isnan(costs.wal_bytes)


_BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"
_BURN_IN_CHILD = (
    "import subprocess, sys, time\n"
    f"subprocess.Popen([sys.executable, '-c', {_BURN.format(s=0.4)!r}]).wait()\n"
    # reaped: its CPU is now only in this process's children_* fields
    "print('reaped', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_tree_counts_the_cpu_of_children_that_already_exited() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _BURN_IN_CHILD], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "reaped"
        process = psutil.Process(parent.pid)
        own = sum(process.cpu_times()[:2])
        # The kernel accounts in ticks, the child burned by its precise clock: a margin.
        assert tree_cpu_seconds(process) >= own + 0.3
    finally:
        parent.kill()
        parent.wait()


def test_a_tree_counts_live_children_once() -> None:
    burn = _BURN.format(s=0.3)
    script = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {burn + 'time.sleep(60)'!r}])\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        process = psutil.Process(parent.pid)
        deadline = time.monotonic() + 60
        while True:
            children = process.children()
            if children and sum(children[0].cpu_times()[:2]) >= 0.3:
                break
            assert time.monotonic() < deadline, "the child did not burn its CPU in 60 s"
            time.sleep(0.05)
        [child] = children
        seconds = tree_cpu_seconds(process)
        parts = sum(process.cpu_times()[:2]) + sum(child.cpu_times()[:2])
        assert seconds == pytest.approx(parts, abs=0.05)
    finally:
        for member in psutil.Process(parent.pid).children(recursive=True):
            member.kill()
        parent.kill()
        parent.wait()


def test_microseconds_keep_one_decimal() -> None:
    assert format_value(20.14, "µs") == "20.1 µs"
    assert format_value(314.2, "B") == "314 B"


def _drain(costs: Costs, rate_events: int = 100_000) -> AggregatorRun:
    return AggregatorRun(
        replicas=1,
        total=rate_events + 500,
        events=rate_events,
        seconds=2.0,
        wall_seconds=4.0,
        peak_rss_mb=200.0,
        rss_halves_mb=(190.0, 200.0),
        sessions=1_000,
        session_rows=7_035,
        dead_letters=0,
        batches=40,
        costs=costs,
    )


def test_the_table_puts_each_cost_beside_the_rates_with_the_issue_targets() -> None:
    one = _drain(Costs(20.0, 6.0, 310.0, 25.0))
    three = _drain(Costs(22.0, 6.5, 320.0, 30.0))
    bare = BareRun(events=100_000, seconds=0.5, invalid=0, cpu_seconds=0.4)
    rows = {f.key: f for f in figures.throughput(one, bare, three, "fsync on")}
    assert rows["aggregator_share_of_bare"].value == pytest.approx(0.25)
    assert rows["aggregator_cpu_us"].value == 20.0
    assert rows["aggregator_cpu_us"].met is False  # target ≤ 10 µs
    assert "25.0 µs counting start-up" in rows["aggregator_cpu_us"].detail
    assert rows["bare_consumer_cpu_us"].value == pytest.approx(4.0)
    assert "5.0×" in rows["bare_consumer_cpu_us"].detail
    assert rows["postgres_cpu_us"].value == 6.0
    assert "0.070 session rows written per event" in rows["postgres_cpu_us"].detail
    assert rows["wal_bytes"].value == 310.0
    assert rows["wal_bytes"].met is False  # target ≤ 200 B
    assert "fsync on" in rows["wal_bytes"].detail
    assert "320 B WAL" in rows["aggregator_3_rate"].detail
    assert rows["aggregator_3_rate"].data["cost_wal_bytes"] == 320.0
