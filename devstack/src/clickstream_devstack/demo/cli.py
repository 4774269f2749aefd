"""``clickstream-demo``'s command line: flags, the closing summary, the exit status."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.console import Console

from clickstream_devstack.demo.options import DemoError, DemoOptions, Outcome
from clickstream_devstack.demo.session import run
from clickstream_devstack.interrupts import Interrupts
from clickstream_devstack.servers.jvm.artifacts import JvmUnavailableError
from clickstream_devstack.servers.processes import ProcessExitedError
from clickstream_devstack.services import ServiceDiedError
from clickstream_ops.verify.render import render, verdict_line
from clickstream_runtime import logs


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clickstream-demo",
        description="The whole pipeline on embedded servers (make demo): producer, "
        "aggregators, a live display, then the report; --real runs it on Apache Kafka and "
        "OpenSearch.",
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
        "--real",
        action="store_true",
        help="run on Apache Kafka and OpenSearch from Maven Central (Java 17+) instead of the "
        "embedded broker; ends with what OpenSearch holds beside the PostgreSQL report",
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


def summary(options: DemoOptions, outcome: Outcome) -> str:
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
    args = parse(argv)
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
        real=args.real,
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
        JvmUnavailableError,
    ) as error:
        console.print("[bold red]demo failed:[/]")
        # Plain text: log tails contain brackets that rich would read as markup.
        console.print(str(error), markup=False, highlight=False, soft_wrap=True)
        console.print(f"(logs are in {work_dir})", markup=False)
        return 1
    console.print(f"[bold green]done[/]: {summary(options, outcome)}", highlight=False)
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
