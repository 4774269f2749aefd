"""Scenario outcomes → the rows of the table, with the issue's targets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from clickstream_devstack.bench.bare import BareRun
from clickstream_devstack.bench.freshness import FreshnessRun
from clickstream_devstack.bench.measure import median, ratio
from clickstream_devstack.bench.results import Figure, Target
from clickstream_devstack.bench.scenarios import AggregatorRun, ProducerRun

EPS = "events/s"
RSS_LIMIT_MB = 300.0
#: "Not growing with sessions", made checkable: within 10 % across a 10× session range.
RSS_GROWTH_LIMIT = 1.10
US = "µs"


def producer(runs: list[ProducerRun]) -> Figure:
    rates = [r.rate for r in runs]
    return Figure(
        key="producer_rate",
        scenario="producer --rate 0",
        label="generated and acknowledged",
        value=median(rates),
        unit=EPS,
        target=Target(">=", 50_000),
        detail=f"median of {len(runs)} × {runs[0].events:,} events"
        + (f"; runs {', '.join(f'{x:,.0f}' for x in rates)}" if len(runs) > 1 else ""),
        runs=tuple(rates),
        data={"wall_seconds": [r.wall_seconds for r in runs]},
    )


#: One figure of a scenario: key, label, value, unit, target, detail.
Row = tuple[str, str, float, str, Target | None, str]


def _figures(
    scenario: str,
    rows: Sequence[Row],
    data: Mapping[str, dict[str, Any]] | None = None,
    *,
    lower_bound: bool = False,
) -> list[Figure]:
    """The figures of ``scenario`` from its rows; ``data`` by key."""
    data = data or {}
    return [
        Figure(key, scenario, label, value, unit, target, detail, data=data.get(key, {}),
               lower_bound=lower_bound)
        for key, label, value, unit, target, detail in rows
    ]  # fmt: skip


def throughput(
    one: AggregatorRun, bare: BareRun, three: AggregatorRun, durability: str
) -> list[Figure]:
    c = one.costs
    rows: list[Row] = [
        ("aggregator_1_rate", "1 replica, pre-filled topic", one.rate, EPS,
         Target(">=", 50_000), _drain_detail(one)),
        ("bare_consumer_rate", "bare consumer (fetch + orjson.loads)", bare.rate, EPS, None,
         "same topic, same run; no validation, nothing written: this machine's ceiling"),
        ("aggregator_share_of_bare", "aggregator / bare consumer", ratio(one.rate, bare.rate),
         "×", Target(">=", 0.5), ""),
        # What one event costs in the 1-replica drain, first to last commit (see ``costs``).
        ("aggregator_cpu_us", "aggregator CPU per event", c.aggregator_cpu_us, US,
         Target("<=", 10.0), f"service + decode workers, first → last commit; "
         f"{c.aggregator_cpu_us_with_startup:,.1f} µs counting start-up"),
        ("bare_consumer_cpu_us", "bare consumer CPU per event", bare.cpu_us, US, None,
         f"fetch + orjson.loads; the aggregator spends "
         f"{ratio(c.aggregator_cpu_us, bare.cpu_us):,.1f}× this"),
        ("postgres_cpu_us", "PostgreSQL CPU per event", c.postgres_cpu_us, US,
         Target("<=", 4.0), f"every server process, same window; "
         f"{ratio(one.session_rows, one.total):.3f} session rows written per event; {durability}"),
        ("wal_bytes", "WAL per event", c.wal_bytes, "B", Target("<=", 200.0),
         f"pg_current_wal_lsn, same window; {durability}"),
        ("aggregator_3_rate", "3 replicas, same topic", three.rate, EPS,
         Target(">=", 0.8 * one.rate, note="0.8 × 1 replica"),
         _drain_detail(three) + "; " + _costs_detail(three)),
        ("aggregator_3_over_1", "3 replicas / 1 replica", ratio(three.rate, one.rate), "×",
         Target(">=", 0.8), ""),
    ]  # fmt: skip
    bare_data = {
        "events": bare.events,
        "seconds": bare.seconds,
        "invalid": bare.invalid,
        "cpu_seconds": bare.cpu_seconds,
    }
    return _figures(
        "aggregator",
        rows,
        {
            "aggregator_1_rate": _drain_data(one),
            "bare_consumer_rate": bare_data,
            "aggregator_3_rate": _drain_data(three),
        },
    )


def _costs_detail(run: AggregatorRun) -> str:
    c = run.costs
    return (
        f"per event {c.aggregator_cpu_us:,.1f} µs aggregators, "
        f"{c.postgres_cpu_us:,.1f} µs PostgreSQL, {c.wal_bytes:,.0f} B WAL"
    )


def _drain_detail(run: AggregatorRun) -> str:
    return (
        f"{run.total:,} events, {run.sessions:,} sessions; {run.wall_rate:,.0f}/s counting start-up"
    )


def _drain_data(run: AggregatorRun) -> dict[str, float]:
    return {
        "total": run.total,
        "events_timed": run.events,
        "seconds": run.seconds,
        "wall_seconds": run.wall_seconds,
        "wall_rate": run.wall_rate,
        "sessions": run.sessions,
        "session_rows": run.session_rows,
        "dead_letters": run.dead_letters,
        "batches": run.batches,
        "peak_rss_mb": run.peak_rss_mb,
        "rss_first_half_mb": run.rss_halves_mb[0],
        "rss_second_half_mb": run.rss_halves_mb[1],
        **{f"cost_{k}": v for k, v in dataclasses.asdict(run.costs).items()},
    }


def freshness(run: FreshnessRun, load_rate: int) -> list[Figure]:
    probes = run.probes
    data = {
        "probes_sent": probes.sent,
        "probes_missing": probes.missing,
        "max_ms": run.max_ms,
        "applied_rate": run.applied_rate,
        "produced_rate": run.produced_rate,
        "delays_ms": probes.delays_ms,
        "unseen_delays_at_least_ms": probes.censored_ms,
    }
    rows: list[Row] = [
        ("freshness_p50_ms", "produced → session row, p50", run.p50_ms, "ms", None,
         f"{probes.sent} probes, {probes.missing} unseen; producer {run.produced_rate:,.0f}/s, "
         f"aggregator applied {run.applied_rate:,.0f}/s"),
        ("freshness_p99_ms", "produced → session row, p99", run.p99_ms, "ms",
         Target("<=", 1000.0), f"max {run.max_ms:,.0f} ms"
         + ("; unseen probes count with their delay so far" if probes.missing else "")),
    ]  # fmt: skip
    return _figures(
        f"freshness @ {load_rate:,}/s",
        rows,
        {"freshness_p50_ms": data},
        lower_bound=bool(probes.missing),
    )


def memory(one: AggregatorRun | None, low: AggregatorRun, high: AggregatorRun) -> list[Figure]:
    """The memory figures; ``one`` (the 1-replica throughput run) is absent with ``--only``."""
    growth = ratio(high.peak_rss_mb, low.peak_rss_mb)
    limit = Target("<", RSS_LIMIT_MB)
    rows: list[Row] = [] if one is None else [
        ("aggregator_peak_rss_mb", "peak RSS, 1-replica run", one.peak_rss_mb, "MB", limit,
         f"{one.sessions:,} sessions (producer traffic)"),
    ]  # fmt: skip
    rows += [
        (key, f"peak RSS, {run.sessions:,} sessions", run.peak_rss_mb, "MB", limit,
         f"{run.total:,} events; peak in 1st half {run.rss_halves_mb[0]:,.0f} MB, "
         f"2nd half {run.rss_halves_mb[1]:,.0f} MB")
        for key, run in (("aggregator_rss_low_sessions_mb", low),
                         ("aggregator_rss_high_sessions_mb", high))
    ]  # fmt: skip
    rows.append(
        ("aggregator_rss_growth", f"peak RSS growth, {_fold(low.sessions, high.sessions)} sessions",
         growth, "×", Target("<=", RSS_GROWTH_LIMIT),
         "" if math.isnan(growth) else f"{high.peak_rss_mb - low.peak_rss_mb:+.1f} MB")
    )  # fmt: skip
    data: dict[str, dict[str, Any]] = {
        "aggregator_rss_low_sessions_mb": _drain_data(low),
        "aggregator_rss_high_sessions_mb": _drain_data(high),
    }
    if one is not None:
        data["aggregator_peak_rss_mb"] = {"rss_halves_mb": list(one.rss_halves_mb)}
    return _figures("aggregator memory", rows, data)


def _fold(low: int, high: int) -> str:
    return f"×{high / low:.3g}" if low else "more"
