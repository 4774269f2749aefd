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
from datetime import datetime

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from clickstream_ops.verify.database import NotAggregatedError
from clickstream_ops.verify.render import render
from clickstream_ops.verify.run import Scope, verify
from clickstream_ops.verify.settings import VerifySettings
from clickstream_ops.verify.topic import TopicReadError
from clickstream_runtime import logs
from clickstream_runtime.settings import load


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. 2026-12-01T10:00Z)")
    return value


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clickstream-verify", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--since", type=_time, help="only records produced at or after (ISO 8601)")
    parser.add_argument("--until", type=_time, help="only records produced before (ISO 8601)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


async def _run(settings: VerifySettings, scope: Scope, console: Console, quiet: bool) -> int:
    columns = (
        TextColumn("reading {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=quiet) as bar:
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
    settings = load(VerifySettings)
    console = Console(stderr=args.json)
    try:
        return asyncio.run(_run(settings, Scope(args.since, args.until), console, args.json))
    except (NotAggregatedError, TopicReadError, OSError) as error:
        console.print(f"[bold red]cannot verify:[/] {error}", highlight=False)
        return 2
