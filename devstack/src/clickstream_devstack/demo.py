"""``clickstream-demo`` (``make demo``): the whole pipeline on embedded servers.

Starts Tansu and PostgreSQL in ``.demo/``, creates the topics, runs
``clickstream-aggregator`` (``--replicas`` of them) and ``clickstream-producer``
for ``--duration`` seconds with a live progress line, stops the producer, waits
until the aggregators have committed every produced offset, stops them and
prints ``clickstream-report``. Every process it started is gone when it exits,
on success, on error and on Ctrl-C alike.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from rich.console import Console
from rich.live import Live
from rich.text import Text

from clickstream_devstack.broker import EmbeddedKafka
from clickstream_devstack.demo_progress import PipelineProgress, Snapshot
from clickstream_devstack.environment import Database, KafkaTopics, create_topics, service_env
from clickstream_devstack.interrupts import Interrupts
from clickstream_devstack.postgres import EmbeddedPostgres
from clickstream_devstack.processes import ProcessExitedError
from clickstream_devstack.services import ServiceDiedError, ServiceGroup, script_path
from clickstream_runtime import logs
from clickstream_schema import CONSUMER_GROUP, DLQ_TOPIC, EVENTS_TOPIC

log = structlog.get_logger()
_WARM_UP_S = 75
_BACKFILL_EVENTS = 20_000

DATABASE = "clickstream"
POLL_S = 0.5


class DemoError(RuntimeError):
    """The demo cannot finish; the message says why and where the logs are."""


@dataclass(frozen=True)
class DemoOptions:
    duration: float
    rate: int
    seed: int
    replicas: int
    catch_up_timeout: float


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clickstream-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of traffic")
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seed", type=int, default=42, help="producer random seed")
    parser.add_argument("--replicas", type=int, default=1, help="aggregator processes")
    parser.add_argument("--catch-up-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="work directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--verbose", action="store_true", help="log the demo's own steps")
    args = parser.parse_args(argv)
    if args.replicas < 1 or args.rate < 1 or args.duration <= 0:
        parser.error("--replicas and --rate must be at least 1, --duration positive")
    return args


def _line(phase: str, started: float, snap: Snapshot) -> Text:
    return Text.assemble(
        (f"{phase:<11}", "bold cyan"),
        f"{time.monotonic() - started:5.1f} s | produced ",
        (f"{snap.produced:,}", "bold"),
        " | committed ",
        (f"{snap.committed:,}", "bold"),
        " | applied ",
        (f"{snap.applied:,}", "bold green"),
        f" | sessions {snap.sessions:,} | DLQ {snap.dead_letters:,}",
    )


async def _drive(
    options: DemoOptions,
    kafka: EmbeddedKafka,
    postgres: EmbeddedPostgres,
    topics: KafkaTopics,
    services: ServiceGroup,
    env: Mapping[str, str],
    console: Console,
) -> Snapshot:
    """Run the services and show progress; return the final counters."""
    async with PipelineProgress(kafka.bootstrap, postgres.dsn(DATABASE), topics) as progress:
        aggregators = [
            services.launch("clickstream-aggregator", env=env, name=f"aggregator-{n}")
            for n in range(1, options.replicas + 1)
        ]
        # Enough users for the rate's concurrent sessions, and a clock started a
        # little in the past so traffic is already at full rate (sessions mid-visit)
        # instead of ramping up over the demo's first minute.
        warm_start = datetime.now(UTC) - timedelta(seconds=_WARM_UP_S)
        producer = services.launch(
            "clickstream-producer",
            [
                "--events", "0",
                "--rate", str(options.rate),
                "--seed", str(options.seed),
                "--users", str(max(10_000, options.rate * 20)),
                "--start", warm_start.isoformat(),
            ],
            env=env,
            name="producer",
        )  # fmt: skip
        # Live sessions are still young when a short demo ends (purchases come late
        # in a visit), so an hour of complete sessions is backfilled alongside.
        services.launch(
            "clickstream-producer",
            [
                "--events", str(_BACKFILL_EVENTS),
                "--rate", "0",
                "--seed", str(options.seed + 1),
                "--users", "5000",
                "--start", (warm_start - timedelta(hours=1)).isoformat(),
            ],
            env=env,
            name="backfill",
            finite=True,
        )  # fmt: skip
        started = time.monotonic()
        snap = Snapshot()
        with Live(_line("producing", started, snap), console=console, refresh_per_second=4) as live:
            while time.monotonic() - started < options.duration:
                services.check_running()
                snap = await progress.snapshot()
                live.update(_line("producing", started, snap))
                await asyncio.sleep(POLL_S)
            code = services.stop(producer)
            if code != 0:
                raise DemoError(producer.describe_exit())
            snap = await _catch_up(options, progress, services, live, started)
        if not console.is_terminal:
            console.line()  # a terminal gets its newline from Live; a pipe does not
        codes = services.stop_all()
        for aggregator in aggregators:
            if codes[aggregator.name] != 0:
                raise DemoError(aggregator.describe_exit())
        return snap


async def _catch_up(
    options: DemoOptions,
    progress: PipelineProgress,
    services: ServiceGroup,
    live: Live,
    started: float,
) -> Snapshot:
    """Wait until every produced offset is committed (two polls in a row, so a
    high watermark still in flight cannot end the wait early)."""
    deadline = time.monotonic() + options.catch_up_timeout
    previous: Snapshot | None = None
    while True:
        services.check_running()
        snap = await progress.snapshot()
        live.update(_line("catching up", started, snap))
        if snap.caught_up and snap == previous:
            return snap
        if time.monotonic() > deadline:
            raise DemoError(
                f"the aggregator did not catch up within {options.catch_up_timeout:.0f} s: "
                f"{snap.committed:,} of {snap.produced:,} offsets committed"
            )
        previous = snap
        await asyncio.sleep(POLL_S)


def _report(env: Mapping[str, str], cwd: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own console script
        [str(script_path("clickstream-report"))],
        env=dict(env),
        cwd=cwd,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise DemoError(f"clickstream-report exited with code {result.returncode}")


def run(options: DemoOptions, work_dir: Path, console: Console) -> Snapshot:
    """Everything between a fresh work directory and the printed report."""
    topics = KafkaTopics(EVENTS_TOPIC, DLQ_TOPIC, CONSUMER_GROUP)
    # Leaving the ExitStack stops the services first, then PostgreSQL, then the broker.
    with ExitStack() as stack:
        with console.status("starting the broker and PostgreSQL…"):
            kafka = stack.enter_context(EmbeddedKafka(work_dir / "kafka"))
            postgres = stack.enter_context(EmbeddedPostgres(work_dir / "postgres", durable=False))
            postgres.create_database(DATABASE)
            create_topics(kafka, topics)
        console.print(
            f"broker [bold]{kafka.bootstrap}[/]  PostgreSQL [bold]{postgres.host}:"
            f"{postgres.port}[/]  logs in [bold]{work_dir}[/]"
        )
        env = service_env(kafka, topics, Database.on(postgres, DATABASE))
        services = stack.enter_context(ServiceGroup(work_dir / "logs", cwd=work_dir))
        final = asyncio.run(_drive(options, kafka, postgres, topics, services, env, console))
        _report(env, work_dir)
    return final


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logs.configure("clickstream-demo", level="info" if args.verbose else "warning", fmt="console")
    interrupts = Interrupts()
    interrupts.install()
    console = Console()
    work_dir: Path = args.dir.absolute()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    options = DemoOptions(args.duration, args.rate, args.seed, args.replicas, args.catch_up_timeout)
    try:
        final = run(options, work_dir, console)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]; everything is stopped, logs are in {work_dir}")
        return interrupts.exit_code
    except (
        DemoError,
        ServiceDiedError,
        ProcessExitedError,
        TimeoutError,
        FileNotFoundError,
    ) as error:
        console.print("[bold red]demo failed:[/]")
        # Plain text: log tails contain brackets that rich would read as markup.
        console.print(str(error), markup=False, highlight=False, soft_wrap=True)
        console.print(f"(logs are in {work_dir})", markup=False)
        return 1
    console.print(
        f"[bold green]done[/]: {final.produced:,} events produced, {final.applied:,} applied "
        f"to {final.sessions:,} sessions, {final.dead_letters:,} dead-lettered"
    )
    if not args.keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0
