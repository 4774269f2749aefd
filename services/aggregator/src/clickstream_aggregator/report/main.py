"""clickstream-report: print the session analytics from PostgreSQL.

    clickstream-report                 charts and tables for people
    clickstream-report --json          one JSON document (the views' rows; money as strings)
    clickstream-report --watch 5       refresh every 5 seconds, fitted to the terminal

Reads the same PostgreSQL settings as the aggregator (POSTGRES_* in the
environment or .env).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from functools import partial

import asyncpg
import structlog
from rich.console import Console

from clickstream_aggregator.report.queries import (
    ACTIVE_MINUTES,
    Limits,
    Report,
    fetch_report,
    prepare,
)
from clickstream_aggregator.report.render import draw_frame, print_report, to_json
from clickstream_runtime import logs
from clickstream_runtime.entrypoint import serve
from clickstream_runtime.settings import (
    SETTINGS_CONFIG,
    ObservabilitySettings,
    PostgresSettings,
    SettingsError,
    load,
)

log = structlog.get_logger()


class ReportSettings(PostgresSettings, ObservabilitySettings):
    model_config = SETTINGS_CONFIG


@dataclass(frozen=True)
class Options:
    json: bool = False
    watch_s: float | None = None
    limits: Limits = field(default_factory=Limits)


class ReportError(SystemExit):
    """A report that cannot be produced: one line saying why, exit status 2."""

    def __init__(self, message: str) -> None:
        print(f"clickstream-report: {message}", file=sys.stderr)
        super().__init__(2)


def _explain(error: Exception, settings: PostgresSettings) -> str:
    where = f"{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_database}"
    if isinstance(error, asyncpg.UndefinedTableError):
        return (
            f"{error} in {where}: the analytics views are created by the aggregator's "
            "migrations; start clickstream-aggregator once against this database"
        )
    if isinstance(
        error, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return f"PostgreSQL at {where} refused the login: check POSTGRES_USER and POSTGRES_PASSWORD"
    if isinstance(error, OSError | TimeoutError):
        return (
            f"cannot reach PostgreSQL at {where} ({error}): check POSTGRES_HOST and POSTGRES_PORT"
        )
    return f"PostgreSQL at {where}: {error}"


async def produce(settings: ReportSettings, limits: Limits) -> Report:
    conn = await asyncpg.connect(**settings.postgres_connect_options())
    try:
        await prepare(conn)
        return await fetch_report(conn, limits)
    finally:
        await conn.close()


async def run(settings: ReportSettings, stop: asyncio.Event, options: Options) -> None:
    console = Console()
    while True:
        try:
            report = await produce(settings, options.limits)
        # One policy for every database failure: explain it; stop unless watching.
        except (asyncpg.PostgresError, OSError, TimeoutError) as error:
            if options.watch_s is None:
                raise ReportError(_explain(error, settings)) from None
            log.warning("report_failed", error=_explain(error, settings))
        else:
            if options.json:
                print(to_json(report), flush=True)
            elif options.watch_s is not None:
                # Redrawn in place: a frame taller than the terminal would scroll.
                draw_frame(console, report, fit_height=console.height)
            else:
                print_report(console, report)
        if options.watch_s is None:
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=options.watch_s)
        except TimeoutError:
            continue
        return


DESCRIPTION = f"""\
Session analytics from PostgreSQL: events per minute, freshness, sessions and
revenue per hour as sparklines, the shop funnel as bars, then tables.

A session is active while it has an event in the last {ACTIVE_MINUTES} minutes and
finished after that. Conversion, bounce, revenue and the funnel are over
finished sessions; active sessions are shown apart.
"""

EPILOG = """\
Reads the aggregator's PostgreSQL settings (POSTGRES_HOST, POSTGRES_PORT,
POSTGRES_DATABASE, POSTGRES_USER, POSTGRES_PASSWORD, ...) from the environment
or .env. Exit status 2 when the report cannot be produced (invalid settings,
PostgreSQL unreachable or refusing, no analytics views yet).
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickstream-report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document (money as decimal strings)"
    )
    parser.add_argument(
        "--watch",
        type=float,
        metavar="N",
        help="refresh every N seconds until Ctrl-C, showing what fits the terminal's height",
    )
    parser.add_argument(
        "--limit", type=int, default=10, metavar="N", help="rows of latest sessions and top pages"
    )
    parser.add_argument(
        "--hours", type=int, default=24, metavar="N", help="hours of traffic to show (default 24)"
    )
    parser.add_argument(
        "--minutes",
        type=int,
        default=60,
        metavar="N",
        help="minutes of events per minute and freshness to chart (default 60)",
    )
    return parser


def _parse(argv: list[str] | None) -> Options:
    cli = parser()
    args = cli.parse_args(argv)
    if args.watch is not None and args.watch <= 0:
        cli.error("--watch needs a positive number of seconds")
    if args.limit < 1 or args.hours < 1 or args.minutes < 1:
        cli.error("--limit, --hours and --minutes must be at least 1")
    return Options(
        json=args.json,
        watch_s=args.watch,
        limits=Limits(
            latest_sessions=args.limit,
            top_pages=args.limit,
            hours=args.hours,
            minutes=args.minutes,
        ),
    )


def main(argv: list[str] | None = None) -> None:
    options = _parse(argv)
    try:
        settings = load(ReportSettings)
    except SettingsError as error:
        # --help promises 2 when the report cannot be produced: settings included.
        raise ReportError(str(error.code)) from None
    logs.configure("clickstream-report", level=settings.log_level, fmt=settings.log_format)
    serve(partial(run, options=options), settings)
