"""The freshness scenario: one aggregator, the producer at a steady rate, probes on top."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import asyncpg
import structlog

from clickstream_devstack.bench import servicelog
from clickstream_devstack.bench.measure import percentile, rate
from clickstream_devstack.bench.probes import Prober, ProbeRun
from clickstream_devstack.bench.rig import Rig, committed
from clickstream_devstack.bench.services import wait_for_log

log = structlog.get_logger()


@dataclass(frozen=True)
class FreshnessRun:
    probes: ProbeRun
    #: Events/s the aggregator committed during the probe window (the load it kept up with).
    applied_rate: float
    seconds: float
    #: What the producer reported for its whole run (``finished``), the offered load.
    produced_rate: float

    @property
    def p50_ms(self) -> float:
        return percentile(self.probes.all_delays_ms(), 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.probes.all_delays_ms(), 99)

    @property
    def max_ms(self) -> float:
        return max(self.probes.all_delays_ms(), default=float("nan"))


async def run_freshness(
    rig: Rig,
    *,
    load_rate: int,
    duration: float,
    warmup: float,
    grace: float,
    seed: int,
    limit_s: float,
) -> FreshnessRun:
    topics = rig.topics("fresh")
    database = rig.database("fresh")
    env = rig.env(topics, database)
    # The producer sizes its population from the rate and starts in steady state:
    # plain settings give the load from the first second.
    args = ["--events", "0", "--rate", str(load_rate), "--seed", str(seed)]
    with rig.services("freshness") as services:
        aggregator = services.launch("clickstream-aggregator", env=env, name="aggregator")
        await wait_for_log(aggregator, b'"aggregator_starting"', limit_s=limit_s)
        producer = services.launch("clickstream-producer", args, env=env, name="producer")
        # A progress line means the load is flowing; then let the pipeline settle.
        await wait_for_log(producer, b'"progress"', limit_s=limit_s)
        await asyncio.sleep(warmup)
        services.check_running()
        connection = await asyncpg.connect(database.dsn)
        try:
            before, began = await committed(connection, topics), time.monotonic()
            prober = Prober(rig.client_options(), topics.events, database.dsn, grace=grace)
            probes = await prober.run(duration)
            seconds = time.monotonic() - began
            applied = await committed(connection, topics) - before
        finally:
            await connection.close()
        services.check_running()
    finished = servicelog.last(producer.log_path, "finished")
    produced = float(finished.fields.get("rate", math.nan)) if finished else math.nan
    run = FreshnessRun(
        probes=probes,
        applied_rate=rate(applied, seconds),
        seconds=seconds,
        produced_rate=produced,
    )
    log.info(
        "freshness_measured",
        probes=probes.sent,
        missing=probes.missing,
        p50_ms=round(run.p50_ms, 1),
        p99_ms=round(run.p99_ms, 1),
        applied_rate=round(run.applied_rate),
    )
    return run
