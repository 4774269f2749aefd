"""``clickstream-demo`` (``make demo``): the whole pipeline on embedded servers.

Starts Tansu and PostgreSQL in ``--dir`` (``.demo/``), creates the topics, runs
``clickstream-aggregator`` (``--replicas`` of them), a backfill of
``--backfill`` events of the past hour, and ``clickstream-producer`` at
``--rate`` events/s for ``--duration`` seconds with a live display; stops the
producer, waits until the aggregators have committed every message on the
topic, stops them and prints ``clickstream-report``. With ``--chaos`` it
injects faults while the traffic runs and ends with the verdict of
``clickstream-verify``. Every process it started is gone when it exits, on
success, on error and on Ctrl-C alike; the work directory is removed after a
success unless ``--keep`` is given (kept after a failure, for its logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import structlog
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from clickstream_devstack import processes
from clickstream_devstack.broker import EmbeddedKafka
from clickstream_devstack.chaos import CHAOS_ENV, Chaos, Replicas
from clickstream_devstack.demo_progress import PipelineProgress, Snapshot
from clickstream_devstack.environment import Database, KafkaTopics, create_topics, service_env
from clickstream_devstack.interrupts import Interrupts
from clickstream_devstack.postgres import EmbeddedPostgres
from clickstream_devstack.processes import ProcessExitedError
from clickstream_devstack.services import Service, ServiceDiedError, ServiceGroup, script_path
from clickstream_ops.verify.render import render, verdict_line
from clickstream_ops.verify.report import Report
from clickstream_ops.verify.run import verify
from clickstream_ops.verify.settings import VerifySettings
from clickstream_runtime import logs
from clickstream_schema import CONSUMER_GROUP, DLQ_TOPIC, EVENTS_TOPIC

log = structlog.get_logger()

DATABASE = "clickstream"
POLL_S = 0.5
_START_TIMEOUT_S = 60.0
#: after a stalled catch-up, how long the dead-letter relay still gets
_STALLED_RELAY_S = 15.0


class DemoError(RuntimeError):
    """The demo cannot finish; the message says why and where the logs are."""


@dataclass(frozen=True)
class DemoOptions:
    duration: float
    rate: int
    seed: int
    replicas: int
    catch_up_timeout: float
    backfill: int = 0
    chaos: bool = False


@dataclass(frozen=True)
class Outcome:
    snapshot: Snapshot
    live_events: int | None
    backfill_events: int | None
    verdict: Report | None = None
    #: under --chaos, what went wrong without being caused by the chaos: replicas
    #: that died on their own (each was started again), a catch-up that stalled
    problems: tuple[str, ...] = ()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clickstream-demo",
        description="The whole pipeline on embedded servers (make demo): producer, "
        "aggregators, a live display, then the report.",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of live traffic [20]")
    parser.add_argument("--rate", type=int, default=1000, help="live events per second [1000]")
    parser.add_argument(
        "--backfill",
        type=int,
        default=20_000,
        help="events of complete sessions dated the past hour, published alongside at full "
        "speed so that the report has finished sessions [20000; 0: none]",
    )
    parser.add_argument("--seed", type=int, default=42, help="producer random seed [42]")
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="aggregator processes (default 1; 3 with --chaos)",
    )
    parser.add_argument(
        "--chaos",
        action="store_true",
        help="kill, freeze and restart replicas and PostgreSQL, inject duplicates, late and "
        "malformed messages; end with clickstream-verify's verdict",
    )
    parser.add_argument(
        "--catch-up-timeout",
        type=float,
        default=None,
        help="seconds (default 30; 120 with --chaos)",
    )
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="work directory [.demo]")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, data) after a success"
    )
    parser.add_argument("--verbose", action="store_true", help="log the demo's own steps")
    args = parser.parse_args(argv)
    if args.replicas is None:
        args.replicas = 3 if args.chaos else 1
    if args.catch_up_timeout is None:
        args.catch_up_timeout = 120.0 if args.chaos else 30.0
    if args.replicas < 1 or args.rate < 1 or args.duration <= 0 or args.backfill < 0:
        parser.error("--replicas and --rate must be at least 1, --duration positive")
    if args.chaos and args.replicas < 2:
        parser.error("--chaos needs at least 2 replicas")
    return args


def _screen(phase: str, seconds: str, snap: Snapshot) -> RenderableType:
    freshness = "–" if snap.freshness_s is None else f"{snap.freshness_s:.1f} s"
    return Group(
        Text.assemble((f"{phase:<12}", "bold cyan"), seconds),
        Text.assemble(
            "produced ",
            (f"{snap.produced:,}", "bold"),
            " · committed ",
            (f"{snap.committed:,}", "bold"),
            f" · lag {snap.lag:,} · applied ",
            (f"{snap.applied:,}", "bold green"),
            f" events · {snap.sessions:,} sessions · {snap.dead_letters:,} dead letters",
        ),
        Text.assemble(
            "events/s  produced ",
            (f"{snap.produced_per_s:,.0f}", "bold"),
            " · applied ",
            (f"{snap.applied_per_s:,.0f}", "bold green"),
            " · freshness ",
            (freshness, "bold magenta"),
            " (age of the newest event applied)",
        ),
    )


def _finished_events(service: Service | None) -> int | None:
    """How many events a producer reported sending in its ``finished`` log line."""
    if service is None:
        return None
    count = None
    for line in service.log_path.read_text(errors="replace").splitlines():
        if '"event":"finished"' in line.replace(" ", ""):
            count = int(json.loads(line)["events"])
    return count


@contextlib.contextmanager
def _live_display(console: Console) -> Iterator[Live]:
    try:
        with Live(console=console, refresh_per_second=4) as live:
            yield live
    finally:
        if not console.is_terminal:
            console.line()  # a terminal gets its newline from Live; a pipe does not


def _launch_producers(
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


async def _drive(
    options: DemoOptions,
    kafka: EmbeddedKafka,
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
        backfill, producer = _launch_producers(options, services, env)
        snap = Snapshot()
        with _live_display(console) as live:
            started = await _wait_started(producer, progress, services, live)

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

            await _produce(options, progress, services, live, started, chaos_task, watch)
            code = services.stop(producer)
            if code != 0:
                raise DemoError(producer.describe_exit())
            stalled = None
            try:
                snap = await _catch_up(options, progress, watch, live)
            except DemoError as error:
                if chaos is None:
                    raise
                # The verdict still says whether what was committed is exact.
                stalled, snap = str(error), await progress.snapshot()
        if chaos is not None:
            await _wait_relayed(
                postgres.dsn(DATABASE), _STALLED_RELAY_S if stalled else options.catch_up_timeout
            )
        problems = [*replicas.crashes, *([stalled] if stalled else [])]
        for replica, code in _stop_replicas(list(replicas.running.values())):
            if code != 0 and chaos is None:
                raise DemoError(replica.describe_exit())
            if code != 0:
                problems.append(f"{replica.name} exited with code {code} when stopped")
        services.stop_all()
        verdict = None if chaos is None else await _verdict(chaos, env, console)
        return Outcome(
            snap,
            _finished_events(producer),
            _finished_events(backfill),
            verdict,
            tuple(problems),
        )


async def _wait_started(
    producer: Service, progress: PipelineProgress, services: ServiceGroup, live: Live
) -> float:
    """When the live producer is ready to send (it logs ``producer_starting``): the
    ``--duration`` seconds of traffic count from there, not from its start-up."""
    since = time.monotonic()
    deadline = since + _START_TIMEOUT_S
    while '"event":"producer_starting"' not in producer.log_path.read_text(errors="replace"):
        services.check_running()
        if time.monotonic() > deadline:
            raise DemoError(f"the producer was not ready after {_START_TIMEOUT_S:.0f} s")
        snap = await progress.snapshot()
        live.update(_screen("starting", f"{time.monotonic() - since:5.1f} s", snap))
        await asyncio.sleep(POLL_S / 5)
    return time.monotonic()


async def _produce(
    options: DemoOptions,
    progress: PipelineProgress,
    services: ServiceGroup,
    live: Live,
    started: float,
    chaos_task: asyncio.Task[None] | None,
    watch: Callable[[], None],
) -> None:
    """The live phase: ``--duration`` seconds of traffic (and the chaos steps)."""
    try:
        while (elapsed := time.monotonic() - started) < options.duration:
            watch()
            if chaos_task is not None and chaos_task.done():
                chaos_task.result()  # raises what went wrong
            snap = await progress.snapshot()
            live.update(_screen("producing", f"{elapsed:5.1f} s of {options.duration:g} s", snap))
            await asyncio.sleep(POLL_S)
        if chaos_task is not None:
            await chaos_task
    finally:
        if chaos_task is not None and not chaos_task.done():
            chaos_task.cancel()


async def _verdict(chaos: Chaos, env: Mapping[str, str], console: Console) -> Report:
    """What the chaos did, and clickstream-verify's report on the result."""
    i = chaos.injected
    console.print(
        f"[magenta]chaos[/]: {i.kills} replicas SIGKILLed, {i.freezes} frozen, "
        f"PostgreSQL restarted {i.postgres_restarts}×, {i.duplicates:,} duplicates, "
        f"{i.late:,} late events, {i.malformed:,} malformed messages",
        highlight=False,
    )
    with console.status("clickstream-verify: re-reading the topic…"):
        return await verify(_verify_settings(env))


def _stop_replicas(replicas: list[Service], timeout: float = 30.0) -> list[tuple[Service, int]]:
    """One SIGTERM each, all at once, then wait for each (SIGKILL at the deadline).

    Exactly one signal: a second SIGTERM tells a service to give up its
    graceful stop and exit at once.
    """
    for replica in replicas:
        replica.stopping = True
        replica.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    codes = []
    for replica in replicas:
        try:
            code = replica.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = processes.kill(replica.process)
        codes.append((replica, code))
    return codes


def _verify_settings(env: Mapping[str, str]) -> VerifySettings:
    # model_validate reads only these values: no os.environ, no .env file.
    fields = VerifySettings.model_fields
    return VerifySettings.model_validate(
        {k.lower(): v for k, v in env.items() if k.lower() in fields}
    )


async def _wait_relayed(dsn: str, limit_s: float) -> None:
    """Dead letters are copied to their topic after the commit: let the relay finish."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + limit_s
        query = "SELECT count(*) FROM dead_letters WHERE relayed_at IS NULL"
        while time.monotonic() < deadline:
            if not await conn.fetchval(query):
                return
            await asyncio.sleep(POLL_S)
    finally:
        await conn.close()


async def _catch_up(
    options: DemoOptions,
    progress: PipelineProgress,
    watch: Callable[[], None],
    live: Live,
) -> Snapshot:
    """Wait until every produced message is committed (two polls in a row, so a
    high watermark still in flight cannot end the wait early)."""
    since = time.monotonic()
    deadline = since + options.catch_up_timeout
    previous: tuple[int, int] | None = None
    while True:
        watch()
        snap = await progress.snapshot()
        live.update(
            _screen(
                "catching up", f"{time.monotonic() - since:5.1f} s since the producer stopped", snap
            )
        )
        if snap.caught_up and (snap.produced, snap.committed) == previous:
            return snap
        if time.monotonic() > deadline:
            raise DemoError(
                f"the aggregators did not catch up within {options.catch_up_timeout:.0f} s: "
                f"{snap.committed:,} of {snap.produced:,} messages committed"
            )
        previous = (snap.produced, snap.committed)
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


def run(options: DemoOptions, work_dir: Path, console: Console, *, keep: bool) -> Outcome:
    """Everything between a fresh work directory and the printed report."""
    topics = KafkaTopics(EVENTS_TOPIC, DLQ_TOPIC, CONSUMER_GROUP)
    # Leaving the ExitStack stops the services first, then PostgreSQL, then the broker.
    with ExitStack() as stack:
        with console.status("starting the broker and PostgreSQL…"):
            kafka = stack.enter_context(EmbeddedKafka(work_dir / "kafka"))
            postgres = stack.enter_context(EmbeddedPostgres(work_dir / "postgres", durable=False))
            postgres.create_database(DATABASE)
            create_topics(kafka, topics)
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
        outcome = asyncio.run(_drive(options, kafka, postgres, topics, services, env, console))
        _report(env, work_dir)
    return outcome


def _summary(options: DemoOptions, outcome: Outcome) -> str:
    snap = outcome.snapshot
    parts = []
    if outcome.backfill_events is not None:
        parts.append(f"{outcome.backfill_events:,} backfilled")
    if outcome.live_events is not None:
        parts.append(
            f"{outcome.live_events:,} live in {options.duration:g} s "
            f"({outcome.live_events / options.duration:,.0f}/s)"
        )
    injected = snap.produced - (outcome.backfill_events or 0) - (outcome.live_events or 0)
    if options.chaos and injected > 0:
        parts.append(f"{injected:,} injected by the chaos")
    split = f" ({' + '.join(parts)})" if parts else ""
    return (
        f"{snap.produced:,} messages produced{split}; {snap.applied:,} events applied "
        f"to {snap.sessions:,} sessions, {snap.dead_letters:,} dead-lettered"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logs.configure("clickstream-demo", level="info" if args.verbose else "warning", fmt="console")
    interrupts = Interrupts()
    interrupts.install()
    console = Console()
    work_dir: Path = args.dir.absolute()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    options = DemoOptions(
        args.duration,
        args.rate,
        args.seed,
        args.replicas,
        args.catch_up_timeout,
        backfill=args.backfill,
        chaos=args.chaos,
    )
    try:
        outcome = run(options, work_dir, console, keep=args.keep)
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
    console.print(f"[bold green]done[/]: {_summary(options, outcome)}", highlight=False)
    if outcome.verdict is not None:
        console.rule("verdict (clickstream-verify, recomputed from the topic)")
        render(outcome.verdict, console)
        if not outcome.verdict.ok:
            console.print(
                f"[bold red]exactly once NOT shown[/]: {verdict_line(outcome.verdict)}; "
                f"logs are in {work_dir}",
                highlight=False,
            )
            return 1
    if outcome.problems:
        console.print(
            f"[bold red]{len(outcome.problems)} problem(s)[/] the chaos did not cause "
            f"by itself; logs are in {work_dir}:",
            highlight=False,
        )
        for problem in outcome.problems:
            console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        return 1
    if not args.keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0
