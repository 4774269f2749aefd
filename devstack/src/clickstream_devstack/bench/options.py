"""How big each scenario is: the full benchmark and ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class BenchOptions:
    mode: str
    #: Events per producer run; the first run's topic is the aggregators' input.
    events: int
    producer_runs: int
    #: ``--users`` of the backfill runs.
    users: int
    freshness_rate: int
    freshness_seconds: float
    freshness_warmup: float
    #: How long after the last probe the bench still waits for outstanding ones.
    probe_grace: float
    #: Events of each memory run, and the distinct sessions they are spread over.
    rss_events: int
    rss_sessions: tuple[int, int]
    seed: int
    #: Upper bound for any single wait; a scenario past it fails instead of hanging.
    timeout: float


FULL = BenchOptions(
    mode="full",
    events=1_000_000,
    producer_runs=3,
    users=10_000,
    freshness_rate=5_000,
    freshness_seconds=30.0,
    freshness_warmup=5.0,
    probe_grace=10.0,
    rss_events=1_000_000,
    rss_sessions=(100_000, 1_000_000),
    seed=42,
    timeout=1_200.0,
)

QUICK = replace(
    FULL,
    mode="quick",
    events=100_000,
    producer_runs=1,
    freshness_seconds=10.0,
    freshness_warmup=2.0,
    probe_grace=3.0,
    rss_events=50_000,
    rss_sessions=(5_000, 50_000),
    timeout=300.0,
)
