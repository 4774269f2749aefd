"""``clickstream-bench`` (``make bench``, ``make bench-quick``): the performance table.

Starts a broker and a durable PostgreSQL in ``.bench/work``, runs the scenarios
one after another (never two at once: they would share the CPUs), prints the
table and writes ``.bench/results.json``. The scenarios run on the embedded
broker (Tansu) and then on Apache Kafka when Java is there (``--broker`` picks). Every process it
started is gone when it exits, on success, on error and on Ctrl-C alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path

import structlog
import uvloop
from rich.console import Console

from clickstream_devstack.bench import BenchError, figures
from clickstream_devstack.bench.bare import read_and_parse
from clickstream_devstack.bench.fill import fill
from clickstream_devstack.bench.freshness import run_freshness
from clickstream_devstack.bench.options import FULL, QUICK, BenchOptions
from clickstream_devstack.bench.results import Figure, Machine, Results
from clickstream_devstack.bench.rig import BROKER_NAMES, BrokerKind, Rig
from clickstream_devstack.bench.scenarios import (
    AggregatorRun,
    ProducerRun,
    run_aggregators,
    run_producer,
)
from clickstream_devstack.bench.table import render
from clickstream_devstack.environment import KafkaTopics
from clickstream_devstack.interrupts import Interrupts
from clickstream_devstack.servers.jvm.artifacts import JvmUnavailableError, find_java
from clickstream_devstack.servers.processes import ProcessExitedError
from clickstream_devstack.services import ServiceDiedError
from clickstream_runtime import logs

log = structlog.get_logger()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clickstream-bench", description=__doc__.splitlines()[0].replace("``", "")
    )
    parser.add_argument("--quick", action="store_true", help="small scenarios, under a minute")
    parser.add_argument("--seed", type=int, default=None, help="producer seed (default 42)")
    parser.add_argument("--dir", type=Path, default=Path(".bench/work"), help="work directory")
    parser.add_argument("--output", type=Path, default=Path(".bench/results.json"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario group (repeatable; default: all)",
    )
    parser.add_argument(
        "--broker",
        action="append",
        choices=BROKERS,
        help="run on this broker (repeatable; default: tansu, and apache-kafka if Java is there)",
    )
    parser.add_argument("--verbose", action="store_true", help="log the bench's own steps")
    return parser.parse_args(argv)


BROKERS: tuple[BrokerKind, ...] = ("tansu", "apache-kafka")


#: Scenario groups ``--only`` can pick; all of them by default, in this order.
SCENARIOS = ("producer", "throughput", "freshness", "memory")


async def _scenarios(
    rig: Rig, options: BenchOptions, results: Results, console: Console, only: set[str]
) -> None:
    o = options
    topics = rig.topics("events")
    runs: list[ProducerRun] = []
    if "producer" in only or "throughput" in only:
        # The first run fills the aggregators' topic; the others only count for the median.
        runs.append(await _produce(rig, topics, o, console, 1))
    one: AggregatorRun | None = None
    if "throughput" in only:
        one = await _throughput(rig, topics, o, results, console)
    if "producer" in only:
        for n in range(2, o.producer_runs + 1):
            rig.fresh_broker()  # like the first run: an empty broker
            runs.append(await _produce(rig, rig.topics(f"producer{n}"), o, console, n))
        results.add(figures.producer(runs), first=True)
    if "freshness" in only:
        rig.fresh_broker()
        with console.status(f"freshness: probes at {o.freshness_rate:,} events/s…"):
            fresh = await run_freshness(
                rig,
                load_rate=o.freshness_rate,
                duration=o.freshness_seconds,
                warmup=o.freshness_warmup,
                grace=o.probe_grace,
                seed=o.seed,
                limit_s=o.timeout,
            )
        results.add(*figures.freshness(fresh, o.freshness_rate))
    if "memory" in only:
        rig.fresh_broker()
        await _memory(rig, o, results, console, one)


async def _produce(
    rig: Rig, topics: KafkaTopics, o: BenchOptions, console: Console, n: int
) -> ProducerRun:
    with console.status(f"producer run {n} of {o.producer_runs}: {o.events:,} events…"):
        return await run_producer(
            rig,
            topics,
            events=o.events,
            seed=o.seed + n - 1,
            users=o.users,
            name=f"producer-{n}",
            limit_s=o.timeout,
        )


async def _throughput(
    rig: Rig, topics: KafkaTopics, o: BenchOptions, results: Results, console: Console
) -> AggregatorRun:
    with console.status("bare consumer: read and decode the topic…"):
        bare = await read_and_parse(
            rig.client_options(), topics.events, topics.partitions, o.events, limit_s=o.timeout
        )
    drained: dict[int, AggregatorRun] = {}
    for replicas in (1, 3):
        with console.status(f"aggregator × {replicas}: drain {o.events:,} events…"):
            label = f"agg{replicas}"
            database = rig.database(label)
            drained[replicas] = await run_aggregators(
                rig,
                rig.new_group(topics, label),
                database,
                replicas=replicas,
                total=o.events,
                name=f"aggregator-x{replicas}",
                limit_s=o.timeout,
            )
            rig.settle(database)
    results.add(*figures.throughput(drained[1], bare, drained[3], rig.durability_note()))
    return drained[1]


async def _memory(
    rig: Rig, o: BenchOptions, results: Results, console: Console, one: AggregatorRun | None
) -> None:
    memory: list[AggregatorRun] = []
    for sessions in o.rss_sessions:
        with console.status(f"memory: {o.rss_events:,} events over {sessions:,} sessions…"):
            rss_topics = rig.topics(f"rss{sessions}")
            await fill(
                rig.client_options(),
                rss_topics.events,
                rss_topics.partitions,
                events=o.rss_events,
                sessions=sessions,
            )
            database = rig.database(f"rss{sessions}")
            memory.append(
                await run_aggregators(
                    rig,
                    rss_topics,
                    database,
                    replicas=1,
                    total=o.rss_events,
                    name=f"aggregator-rss{sessions}",
                    limit_s=o.timeout,
                )
            )
            rig.settle(database)
    results.add(*figures.memory(one, memory[0], memory[1]))


def run(
    options: BenchOptions,
    work_dir: Path,
    results: Results,
    console: Console,
    only: set[str],
    brokers: list[BrokerKind],
) -> None:
    for broker in brokers:
        name = BROKER_NAMES[broker]
        part = Results(results.mode, results.machine, results.options)
        try:
            # Leaving the ExitStack stops PostgreSQL, then the broker.
            with ExitStack() as stack:
                with console.status(f"starting {name} and PostgreSQL (durable)…"):
                    rig = Rig(stack, work_dir / broker, broker)
                uvloop.run(_scenarios(rig, options, part, console, only))
        except JvmUnavailableError as error:
            results.notes.append(f"{name} not measured: {error}")
        finally:
            results.add(*_on_broker(part.figures, broker, labelled=brokers != ["tansu"]))


def _on_broker(measured: list[Figure], broker: BrokerKind, *, labelled: bool) -> list[Figure]:
    """The figures of one broker: its name beside the scenario; keys of Tansu unchanged."""
    if not labelled:
        return measured
    return [
        dataclasses.replace(
            f,
            key=f.key if broker == "tansu" else f"{broker}.{f.key}",
            scenario=f"{f.scenario} · {BROKER_NAMES[broker]}",
        )
        for f in measured
    ]


def _brokers(chosen: list[BrokerKind] | None, results: Results) -> list[BrokerKind]:
    if chosen:
        return list(dict.fromkeys(chosen))
    try:
        find_java()
    except JvmUnavailableError as error:
        results.notes.append(f"Apache Kafka not measured: {error}")
        return ["tansu"]
    return ["tansu", "apache-kafka"]


def _notes(results: Results) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results.notes += [
        "rates are timed from the services' own log events (producer_starting → finished; "
        "first → last batch_committed), excluding process start-up; wall-clock rates are in "
        "the JSON",
        "PostgreSQL runs durable (fsync, synchronous commit, full-page writes: read from the "
        "server, the bench refuses to run without fsync); Tansu keeps its log in memory, "
        "Apache Kafka (KRaft, one node, default flush: the page cache) on disk; exactly-once, "
        "dedupe and dead-lettering are always on",
        "cost per event: CPU seconds of the process trees (live processes and their reaped "
        "children) and the WAL position, sampled every 200 ms and interpolated at the first "
        "and last batch_committed, divided by the messages committed after the first batch",
        "memory runs: the same number of events spread over N distinct sessions, "
        "peak RSS of the aggregator process sampled every 200 ms",
        f"load average at the end: {load} (other work on this machine skews every figure)",
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logs.configure("clickstream-bench", level="info" if args.verbose else "warning", fmt="console")
    interrupts = Interrupts()
    interrupts.install()
    # Piped (make bench | tee, CI) rich would wrap at 80 columns; the table needs more.
    console = Console() if sys.stdout.isatty() else Console(width=170)
    options = QUICK if args.quick else FULL
    if args.seed is not None:
        options = dataclasses.replace(options, seed=args.seed)
    work_dir: Path = args.dir.absolute()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    results = Results(options.mode, Machine.describe(), dataclasses.asdict(options))
    try:
        brokers = _brokers(args.broker, results)
        run(options, work_dir, results, console, set(args.only or SCENARIOS), brokers)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]; everything is stopped, logs are in {work_dir}")
        return interrupts.exit_code
    except (
        BenchError,
        ServiceDiedError,
        ProcessExitedError,
        TimeoutError,
        FileNotFoundError,
    ) as error:
        render(results, console)
        console.print(f"[bold red]bench failed:[/] {error}\n(logs are in {work_dir})")
        return 1
    _notes(results)
    render(results, console)
    results.write(args.output)
    console.print(f"results written to [bold]{args.output}[/]")
    if not args.keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0
