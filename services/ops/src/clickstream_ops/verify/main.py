"""``clickstream-verify``: prove (or disprove) exactly once on a running deployment.

Re-reads the events topic up to the offsets the aggregator has committed,
recomputes every session's metrics from the events on their own, and compares
them with ``session_metrics``, ``dead_letters`` and the dead-letter topic.
Configured like the aggregator (KAFKA_*, POSTGRES_*, KAFKA_TOPIC,
KAFKA_DLQ_TOPIC, KAFKA_GROUP_ID, AGGREGATOR_MAX_MESSAGE_BYTES). Exit status: 0
when everything matches, 1 on any difference, 2 when it could not check.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import orjson
from aiokafka.errors import KafkaError
from asyncpg import PostgresError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from clickstream_ops.verify.database import NotAggregatedError
from clickstream_ops.verify.render import render
from clickstream_ops.verify.run import Scope, verify
from clickstream_ops.verify.settings import VerifySettings
from clickstream_ops.verify.times import TimeError, parse_time
from clickstream_ops.verify.topic import TopicReadError
from clickstream_runtime import logs
from clickstream_runtime.settings import SettingsError, load


def _time(text: str) -> datetime:
    # An ArgumentTypeError, so that argparse names the flag and prints this message
    # (a ValueError would read "invalid _time value").
    try:
        return parse_time(text, datetime.now(UTC))
    except TimeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clickstream-verify",
        description="Recompute the session metrics from the events topic and compare them "
        "with session_metrics, dead_letters and the dead-letter topic. Configured like the "
        "aggregator (KAFKA_*, POSTGRES_*). Exit status 0: they match; 1: a difference; "
        "2: could not check.",
    )
    parser.add_argument(
        "--since",
        type=_time,
        help="only records whose Kafka timestamp is at or after this time: 2026-12-01T10:00Z, "
        "2026-12-01 (UTC), today, yesterday, or an age such as 2h or 3d",
    )
    parser.add_argument(
        "--until",
        type=_time,
        help="only records whose Kafka timestamp is before this time (the same forms)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


async def _run(settings: VerifySettings, scope: Scope, console: Console, quiet: bool) -> int:
    columns = (
        TextColumn("reading {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    # A bar only where it can be redrawn: a pipe or a file gets the report alone.
    with Progress(
        *columns, console=console, transient=True, disable=quiet or not console.is_terminal
    ) as bar:
        task = bar.add_task(settings.kafka_topic, total=None)
        report = await verify(
            settings, scope, lambda done, total: bar.update(task, completed=done, total=total)
        )
    if quiet:
        sys.stdout.write(orjson.dumps(report.as_json(), default=str).decode() + "\n")
    else:
        render(report, console)
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logs.configure("clickstream-verify", level="warning", fmt="console")
    console = Console(stderr=args.json)
    try:
        settings = load(VerifySettings)
    except SettingsError as error:
        # Exit status 1 means "a difference": a configuration problem is a 2.
        console.print(str(error.code), markup=False, highlight=False)
        return 2
    try:
        return asyncio.run(_run(settings, Scope(args.since, args.until), console, args.json))
    except (NotAggregatedError, TopicReadError, OSError, KafkaError, PostgresError) as error:
        console.print(f"[bold red]cannot verify:[/] {escape(str(error))}", highlight=False)
        return 2
