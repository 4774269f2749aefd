"""The throughput scenarios: the producer filling a topic, aggregators draining one.

Rates come from the services' own log events (``producer_starting`` →
``finished``; first → last ``batch_committed``), so process start-up, imports
and the bench's polling interval stay out of the figures. The wall-clock
alternatives are kept alongside for the JSON.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg
import structlog

from clickstream_devstack.bench import BenchError, servicelog
from clickstream_devstack.bench.costs import Costs, CpuSampler, WalSampler
from clickstream_devstack.bench.measure import RssSampler, rate
from clickstream_devstack.bench.rig import Rig
from clickstream_devstack.bench.services import wait_caught_up, wait_exit
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.services import Service

log = structlog.get_logger()


@dataclass(frozen=True)
class ProducerRun:
    events: int
    seconds: float
    wall_seconds: float

    @property
    def rate(self) -> float:
        return rate(self.events, self.seconds)


@dataclass(frozen=True)
class AggregatorRun:
    replicas: int
    #: Every message of the topic.
    total: int
    #: Messages committed after the first batch (the ones the clock below covers).
    events: int
    #: First to last batch commit: the steady-state drain, without start-up.
    seconds: float
    #: First process start to the bench seeing every offset committed.
    wall_seconds: float
    peak_rss_mb: float
    #: Peak RSS in the first and second half of the run (growth within one run).
    rss_halves_mb: tuple[float, float]
    sessions: int
    #: Session rows the batches wrote (``batch_committed``'s ``sessions``): about
    #: half of what an event costs PostgreSQL is its share of them.
    session_rows: int
    dead_letters: int
    batches: int
    #: CPU and WAL per event over the same window as ``seconds``.
    costs: Costs

    @property
    def rate(self) -> float:
        return rate(self.events, self.seconds)

    @property
    def wall_rate(self) -> float:
        return rate(self.total, self.wall_seconds)


async def run_producer(
    rig: Rig,
    topics: KafkaTopics,
    *,
    events: int,
    seed: int,
    users: int,
    name: str,
    limit_s: float,
) -> ProducerRun:
    """``clickstream-producer --events N --rate 0`` into ``topics``, timed from its own log."""
    # The producer needs no database; service_env wants one, the default is harmless.
    env = rig.env(topics, Database.on(rig.postgres, "postgres"))
    args = ["--events", str(events), "--rate", "0", "--seed", str(seed), "--users", str(users)]
    with rig.services(name) as services:
        started = time.monotonic()
        producer = services.launch("clickstream-producer", args, env=env, name=name)
        code = await wait_exit(producer, limit_s=limit_s)
        wall = time.monotonic() - started
    if code != 0:
        raise BenchError(producer.describe_exit())
    return _producer_run(producer, events, wall)


def _producer_run(producer: Service, wanted: int, wall: float) -> ProducerRun:
    begin = servicelog.first(producer.log_path, "producer_starting")
    end = servicelog.last(producer.log_path, "finished")
    if begin is None or end is None:
        raise BenchError(f"{producer.name}: no producer_starting/finished events in its log")
    acked = int(end.fields.get("acked", 0))
    if acked != wanted:
        raise BenchError(f"{producer.name}: {acked:,} of {wanted:,} events acknowledged")
    seconds = (end.at - begin.at).total_seconds()
    run = ProducerRun(events=acked, seconds=seconds, wall_seconds=wall)
    log.info("producer_measured", run=producer.name, events=acked, rate=round(run.rate))
    return run


async def run_aggregators(
    rig: Rig,
    topics: KafkaTopics,
    database: Database,
    *,
    replicas: int,
    total: int,
    name: str,
    limit_s: float,
) -> AggregatorRun:
    """``replicas`` aggregators drain ``total`` messages of ``topics`` into ``database``."""
    env = rig.env(topics, database)
    with rig.services(name) as services:
        started = time.monotonic()
        launched = [
            services.launch("clickstream-aggregator", env=env, name=f"{name}-{n}")
            for n in range(1, replicas + 1)
        ]
        pids = [s.process.pid for s in launched]
        connection = await asyncpg.connect(database.dsn)
        try:
            with (
                RssSampler(pids) as rss,
                CpuSampler({"aggregator": pids, "postgres": [rig.postgres_pid]}) as cpu,
            ):
                async with WalSampler(database.dsn) as wal:
                    done_at = await wait_caught_up(
                        connection, topics, total, services, limit_s=limit_s
                    )
            sessions = int(await connection.fetchval("SELECT COUNT(*) FROM session_metrics"))
            dead = int(await connection.fetchval("SELECT COUNT(*) FROM dead_letters"))
        finally:
            await connection.close()
        services.stop_all()
    run = _aggregator_run(launched, total, done_at - started, rss, sessions, dead, cpu, wal)
    log.info(
        "aggregator_measured",
        run=name,
        replicas=replicas,
        rate=round(run.rate),
        aggregator_cpu_us=round(run.costs.aggregator_cpu_us, 2),
        postgres_cpu_us=round(run.costs.postgres_cpu_us, 2),
        wal_bytes=round(run.costs.wal_bytes, 1),
    )
    return run


def _aggregator_run(
    launched: list[Service],
    total: int,
    wall: float,
    rss: RssSampler,
    sessions: int,
    dead_letters: int,
    cpu: CpuSampler,
    wal: WalSampler,
) -> AggregatorRun:
    commits = sorted(
        (
            event
            for s in launched
            for event in servicelog.read_events(s.log_path, ["batch_committed"])
        ),
        key=lambda event: event.at,
    )
    if not commits:
        raise BenchError(f"{launched[0].name}: no batch_committed events in the logs")
    messages = sum(int(c.fields.get("messages", 0)) for c in commits)
    if messages != total:
        # Another group's commits or a replayed batch would make the rate wrong.
        log.warning("commit_count_mismatch", committed=messages, expected=total)
    # The first batch's messages were fetched before the clock starts: leave them out.
    after_first = messages - int(commits[0].fields.get("messages", 0))
    start, end = commits[0].at.timestamp(), commits[-1].at.timestamp()
    costs = Costs.measure(
        cpu.series, wal.series, start=start, end=end, events=after_first, total=total
    )
    return AggregatorRun(
        replicas=len(launched),
        total=total,
        events=after_first,
        seconds=(commits[-1].at - commits[0].at).total_seconds(),
        wall_seconds=wall,
        peak_rss_mb=rss.peak_mb,
        rss_halves_mb=rss.halves_mb(),
        sessions=sessions,
        session_rows=sum(int(c.fields.get("sessions") or 0) for c in commits),
        dead_letters=dead_letters,
        batches=len(commits),
        costs=costs,
    )
