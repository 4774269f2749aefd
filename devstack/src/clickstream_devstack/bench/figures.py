"""Scenario outcomes → the rows of the table, with the issue's targets."""

from __future__ import annotations

import dataclasses
import math

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


def throughput(
    one: AggregatorRun, bare: BareRun, three: AggregatorRun, durability: str
) -> list[Figure]:
    share = ratio(one.rate, bare.rate)
    scaling = ratio(three.rate, one.rate)
    return [
        Figure(
            key="aggregator_1_rate",
            scenario="aggregator",
            label="1 replica, pre-filled topic",
            value=one.rate,
            unit=EPS,
            target=Target(">=", 50_000),
            detail=_drain_detail(one),
            data=_drain_data(one),
        ),
        Figure(
            key="bare_consumer_rate",
            scenario="aggregator",
            label="bare consumer (fetch + orjson.loads)",
            value=bare.rate,
            unit=EPS,
            detail="same topic, same run; no validation, nothing written: this machine's ceiling",
            data={
                "events": bare.events,
                "seconds": bare.seconds,
                "invalid": bare.invalid,
                "cpu_seconds": bare.cpu_seconds,
            },
        ),
        Figure(
            key="aggregator_share_of_bare",
            scenario="aggregator",
            label="aggregator / bare consumer",
            value=share,
            unit="×",
            target=Target(">=", 0.5),
        ),
        *costs(one, bare, durability),
        Figure(
            key="aggregator_3_rate",
            scenario="aggregator",
            label="3 replicas, same topic",
            value=three.rate,
            unit=EPS,
            target=Target(">=", 0.8 * one.rate, note="0.8 × 1 replica"),
            detail=_drain_detail(three) + "; " + _costs_detail(three),
            data=_drain_data(three),
        ),
        Figure(
            key="aggregator_3_over_1",
            scenario="aggregator",
            label="3 replicas / 1 replica",
            value=scaling,
            unit="×",
            target=Target(">=", 0.8),
        ),
    ]


def costs(one: AggregatorRun, bare: BareRun, durability: str) -> list[Figure]:
    """What one event costs in the 1-replica drain, first to last commit (see ``costs``)."""
    c = one.costs
    return [
        Figure(
            key="aggregator_cpu_us",
            scenario="aggregator",
            label="aggregator CPU per event",
            value=c.aggregator_cpu_us,
            unit=US,
            target=Target("<=", 10.0),
            detail=f"service + decode workers, first → last commit; "
            f"{c.aggregator_cpu_us_with_startup:,.1f} µs counting start-up",
        ),
        Figure(
            key="bare_consumer_cpu_us",
            scenario="aggregator",
            label="bare consumer CPU per event",
            value=bare.cpu_us,
            unit=US,
            detail=f"fetch + orjson.loads; the aggregator spends "
            f"{ratio(c.aggregator_cpu_us, bare.cpu_us):,.1f}× this",
        ),
        Figure(
            key="postgres_cpu_us",
            scenario="aggregator",
            label="PostgreSQL CPU per event",
            value=c.postgres_cpu_us,
            unit=US,
            target=Target("<=", 4.0),
            detail=f"every server process, same window; {durability}",
        ),
        Figure(
            key="wal_bytes",
            scenario="aggregator",
            label="WAL per event",
            value=c.wal_bytes,
            unit="B",
            target=Target("<=", 200.0),
            detail=f"pg_current_wal_lsn, same window; {durability}",
        ),
    ]


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
        "dead_letters": run.dead_letters,
        "batches": run.batches,
        "peak_rss_mb": run.peak_rss_mb,
        "rss_first_half_mb": run.rss_halves_mb[0],
        "rss_second_half_mb": run.rss_halves_mb[1],
        **{f"cost_{k}": v for k, v in dataclasses.asdict(run.costs).items()},
    }


def freshness(run: FreshnessRun, load_rate: int) -> list[Figure]:
    probes = run.probes
    detail = (
        f"{probes.sent} probes, {probes.missing} unseen; producer {run.produced_rate:,.0f}/s, "
        f"aggregator applied {run.applied_rate:,.0f}/s"
    )
    data = {
        "probes_sent": probes.sent,
        "probes_missing": probes.missing,
        "max_ms": run.max_ms,
        "applied_rate": run.applied_rate,
        "produced_rate": run.produced_rate,
        "delays_ms": probes.delays_ms,
        "unseen_delays_at_least_ms": probes.censored_ms,
    }
    scenario = f"freshness @ {load_rate:,}/s"
    return [
        Figure(
            key="freshness_p50_ms",
            scenario=scenario,
            label="produced → session row, p50",
            value=run.p50_ms,
            unit="ms",
            detail=detail,
            data=data,
            lower_bound=bool(probes.missing),
        ),
        Figure(
            key="freshness_p99_ms",
            scenario=scenario,
            label="produced → session row, p99",
            value=run.p99_ms,
            unit="ms",
            target=Target("<=", 1000.0),
            detail=f"max {run.max_ms:,.0f} ms"
            + ("; unseen probes count with their delay so far" if probes.missing else ""),
            lower_bound=bool(probes.missing),
        ),
    ]


def memory(one: AggregatorRun | None, low: AggregatorRun, high: AggregatorRun) -> list[Figure]:
    """The memory figures; ``one`` (the 1-replica throughput run) is absent with ``--only``."""
    growth = ratio(high.peak_rss_mb, low.peak_rss_mb)
    peak = []
    if one is not None:
        peak.append(
            Figure(
                key="aggregator_peak_rss_mb",
                scenario="aggregator memory",
                label="peak RSS, 1-replica run",
                value=one.peak_rss_mb,
                unit="MB",
                target=Target("<", RSS_LIMIT_MB),
                detail=f"{one.sessions:,} sessions (producer traffic)",
                data={"rss_halves_mb": list(one.rss_halves_mb)},
            )
        )
    return [
        *peak,
        _rss("aggregator_rss_low_sessions_mb", low),
        _rss("aggregator_rss_high_sessions_mb", high),
        Figure(
            key="aggregator_rss_growth",
            scenario="aggregator memory",
            label=f"peak RSS growth, {_fold(low.sessions, high.sessions)} sessions",
            value=growth,
            unit="×",
            target=Target("<=", RSS_GROWTH_LIMIT),
            detail="" if math.isnan(growth) else f"{high.peak_rss_mb - low.peak_rss_mb:+.1f} MB",
        ),
    ]


def _fold(low: int, high: int) -> str:
    return f"×{high / low:.3g}" if low else "more"


def _rss(key: str, run: AggregatorRun) -> Figure:
    return Figure(
        key=key,
        scenario="aggregator memory",
        label=f"peak RSS, {run.sessions:,} sessions",
        value=run.peak_rss_mb,
        unit="MB",
        target=Target("<", RSS_LIMIT_MB),
        detail=f"{run.total:,} events; peak in 1st half {run.rss_halves_mb[0]:,.0f} MB, "
        f"2nd half {run.rss_halves_mb[1]:,.0f} MB",
        data=_drain_data(run),
    )
