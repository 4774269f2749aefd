"""One demo run: the servers, the services, the phases, the report."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Mapping
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from clickstream_devstack.demo import opensearch_stage
from clickstream_devstack.demo.chaos import CHAOS_ENV, Chaos, Replicas
from clickstream_devstack.demo.options import DATABASE, DemoError, DemoOptions, Outcome
from clickstream_devstack.demo.phases import catch_up, produce, stop_replicas, wait_started
from clickstream_devstack.demo.progress import PipelineProgress, Snapshot
from clickstream_devstack.demo.screen import live_display
from clickstream_devstack.demo.verdict import closing_verdict, wait_relayed
from clickstream_devstack.environment import (
    Broker,
    Database,
    KafkaTopics,
    create_topics,
    service_env,
)
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.servers.jvm.opensearch import OpenSearch
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_devstack.services import Service, ServiceGroup, script_path
from clickstream_schema import CONSUMER_GROUP, DLQ_TOPIC, EVENTS_TOPIC

#: after a stalled catch-up, how long the dead-letter relay still gets
_STALLED_RELAY_S = 15.0


def finished_events(service: Service | None) -> int | None:
    """How many events a producer reported sending in its ``finished`` log line."""
    if service is None:
        return None
    count = None
    for line in service.log_path.read_text(errors="replace").splitlines():
        if '"event":"finished"' in line.replace(" ", ""):
            count = int(json.loads(line)["events"])
    return count


def launch_producers(
    options: DemoOptions, services: ServiceGroup, env: Mapping[str, str]
) -> tuple[Service | None, Service]:
    """The backfill (if any) and the live producer, with the producer's own sizing:
    ``--rate R`` alone delivers R events/s from the start."""
    backfill = None
    if options.backfill:
        # Live sessions are still young when a short demo ends (purchases come
        # late in a visit), so sessions that finished an hour ago come alongside.
        backfill = services.launch(
            "clickstream-producer",
            [
                "--events", str(options.backfill),
                "--rate", "0",
                "--seed", str(options.seed + 1),
                "--start", (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            ],
            env=env,
            name="backfill",
            finite=True,
        )  # fmt: skip
    producer = services.launch(
        "clickstream-producer",
        [
            "--events", "0",
            "--rate", str(options.rate),
            "--seed", str(options.seed),
        ],
        env=env,
        name="producer",
    )  # fmt: skip
    return backfill, producer


async def drive(
    options: DemoOptions,
    kafka: Broker,
    postgres: EmbeddedPostgres,
    topics: KafkaTopics,
    services: ServiceGroup,
    env: Mapping[str, str],
    console: Console,
) -> Outcome:
    """Run the services and show progress; return the final counters."""
    async with PipelineProgress(kafka.bootstrap, postgres.dsn(DATABASE), topics) as progress:
        replicas = Replicas(services, env)
        for n in range(1, options.replicas + 1):
            replicas.start(f"aggregator-{n}")
        backfill, producer = launch_producers(options, services, env)
        snap = Snapshot()
        with live_display(console) as live:
            started = await wait_started(producer, progress, services, live)

            def say(text: str) -> None:
                live.console.print(
                    f"[magenta]chaos[/] {time.monotonic() - started:5.1f} s  {text}",
                    highlight=False,
                )

            chaos = None
            chaos_task = None
            if options.chaos:
                chaos = Chaos(
                    replicas,
                    postgres,
                    kafka.bootstrap,
                    topics,
                    duration=options.duration,
                    seed=options.seed,
                    scale=max(10, int(options.rate * options.duration) // 200),
                    log=say,
                )
                chaos_task = asyncio.create_task(chaos.run(started), name="chaos")

            def watch() -> None:
                if chaos is not None:
                    for crash in replicas.revive():
                        live.console.print(f"[bold red]crash[/] {escape(crash)}", highlight=False)
                services.check_running()

            await produce(options, progress, services, live, started, chaos_task, watch)
            code = services.stop(producer)
            if code != 0:
                raise DemoError(producer.describe_exit())
            stalled = None
            try:
                snap = await catch_up(options, progress, watch, live)
            except DemoError as error:
                if chaos is None:
                    raise
                # The verdict still says whether what was committed is exact.
                stalled, snap = str(error), await progress.snapshot()
        if chaos is not None:
            await wait_relayed(
                postgres.dsn(DATABASE), _STALLED_RELAY_S if stalled else options.catch_up_timeout
            )
        problems = [*replicas.crashes, *([stalled] if stalled else [])]
        for replica, code in stop_replicas(list(replicas.running.values())):
            if code != 0 and chaos is None:
                raise DemoError(replica.describe_exit())
            if code != 0:
                problems.append(f"{replica.name} exited with code {code} when stopped")
        services.stop_all()
        report = None if chaos is None else await closing_verdict(chaos, env, console)
        return Outcome(
            snap,
            finished_events(producer),
            finished_events(backfill),
            report,
            tuple(problems),
        )


def print_report(env: Mapping[str, str], cwd: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own console script
        [str(script_path("clickstream-report"))],
        env=dict(env),
        cwd=cwd,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise DemoError(f"clickstream-report exited with code {result.returncode}")


def run(options: DemoOptions, work_dir: Path, console: Console, *, keep: bool) -> Outcome:
    """Everything between a fresh work directory and the printed report."""
    topics = KafkaTopics(EVENTS_TOPIC, DLQ_TOPIC, CONSUMER_GROUP)
    # Leaving the ExitStack stops the services first, then PostgreSQL, then the broker.
    with ExitStack() as stack:
        with console.status("starting the broker and PostgreSQL…"):
            kafka: Broker
            if options.real:
                kafka = stack.enter_context(ApacheKafka(work_dir / "kafka"))
            else:
                kafka = stack.enter_context(EmbeddedKafka(work_dir / "kafka"))
            postgres = stack.enter_context(EmbeddedPostgres(work_dir / "postgres", durable=False))
            postgres.create_database(DATABASE)
            create_topics(kafka, topics)
        opensearch = None
        if options.real:
            with console.status("starting OpenSearch…"):
                opensearch = stack.enter_context(OpenSearch(work_dir / "opensearch"))
            console.print(f"Apache Kafka and OpenSearch [bold]{opensearch.url}[/] (--real)")
        where = (
            f"logs in [bold]{work_dir}[/]"
            if keep
            else f"work files in {work_dir} (removed at the end; --keep keeps them)"
        )
        console.print(
            f"broker [bold]{kafka.bootstrap}[/]  PostgreSQL [bold]{postgres.host}:"
            f"{postgres.port}[/]  {where}"
        )
        env = service_env(kafka, topics, Database.on(postgres, DATABASE))
        if options.chaos:
            env.update(CHAOS_ENV)
        services = stack.enter_context(ServiceGroup(work_dir / "logs", cwd=work_dir))
        outcome = asyncio.run(drive(options, kafka, postgres, topics, services, env, console))
        print_report(env, work_dir)
        if opensearch is not None:
            asyncio.run(_opensearch(console, kafka, topics, opensearch, postgres.dsn(DATABASE)))
    return outcome


async def _opensearch(
    console: Console, kafka: Broker, topics: KafkaTopics, opensearch: OpenSearch, dsn: str
) -> None:
    """--real: index the topic as the sink connector would, then show what OpenSearch holds."""
    with console.status("indexing the topic into OpenSearch…"):
        await opensearch_stage.apply_assets(opensearch)
        indexed = await opensearch_stage.index_topic(
            kafka, topics.events, topics.partitions, opensearch
        )
    await opensearch_stage.show(console, opensearch, indexed, dsn)
