"""``clickstream-check``: the design document's troubleshooting list, automated.

For Kafka, PostgreSQL, OpenSearch and OpenSearch Dashboards, in that order:
settings, certificate files, DNS, TCP, TLS, login, and what the service says.
One line per check: OK, FAIL (with the likely cause and the fix) or SKIP,
and nothing else (libraries' own log lines only with ``--debug``).
A service whose settings are absent is "not configured" and skipped, except
Kafka: without ``KAFKA_BOOTSTRAP_SERVERS`` the services quietly use
``localhost:9092``, so a doctor that skipped the broker and said "all passed"
would hide the first thing to fix. The exit status is 1 when any check fails
(an unset ``KAFKA_BOOTSTRAP_SERVERS`` included), else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict
from functools import partial

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from clickstream_ops.check.kafka import check_kafka
from clickstream_ops.check.opensearch import check_dashboards, check_opensearch
from clickstream_ops.check.postgres import check_postgres, stored_offsets
from clickstream_ops.check.results import Result, Verdict, not_configured
from clickstream_ops.check.settings import CheckSettings, KafkaCheckSettings, load_all
from clickstream_runtime import logs

_STYLE = {Verdict.OK: "green", Verdict.FAIL: "bold red", Verdict.SKIP: "yellow"}


async def run_checks(settings: CheckSettings, wait_s: float) -> list[Result]:
    """Every check, in order; what tests call."""
    results: list[Result] = []
    kafka, postgres = settings.kafka, settings.postgres
    if kafka.configured:
        stored = partial(stored_offsets, postgres, wait_s)
        results += await check_kafka(kafka, wait_s, stored)
    else:
        results.append(kafka_unset(kafka.variable))
    if postgres.configured:
        # The aggregator's group and topic (their defaults when Kafka is not configured).
        source = kafka.settings or _group_settings()
        results += await check_postgres(
            postgres, wait_s, group=source.kafka_group_id, topic=source.kafka_topic
        )
    else:
        results.append(not_configured("postgres", postgres.variable))
    for service, section, check in (
        ("opensearch", settings.opensearch, check_opensearch),
        ("dashboards", settings.dashboards, check_dashboards),
    ):
        if section.configured:
            results += await check(section, wait_s)
        else:
            results.append(not_configured(service, section.variable))
    return results


def _group_settings() -> KafkaCheckSettings:
    try:
        return KafkaCheckSettings()
    except ValidationError:  # already a FAIL line for Kafka: fall back to the defaults
        return KafkaCheckSettings.model_construct()


def kafka_unset(variable: str) -> Result:
    default = KafkaCheckSettings.model_fields["kafka_bootstrap_servers"].default
    return Result(
        "kafka",
        "settings",
        Verdict.FAIL,
        f"{variable} is not set: the aggregator and the producer would use {default}",
        f"set {variable}=host:port in the environment or .env (Aiven: the Kafka service URI)",
    )


def line(result: Result) -> str:
    """One line, plain text: ``FAIL postgres   auth     ... → fix``."""
    text = f"{result.verdict.value:<4} {result.service:<10} {result.step:<13} {result.detail}"
    return f"{text} → {result.fix}" if result.fix else text


def print_results(console: Console, results: list[Result]) -> None:
    for result in results:
        style = _STYLE[result.verdict]
        console.print(
            f"[{style}]{result.verdict.value:<4}[/] {escape(line(result)[5:])}",
            highlight=False,
            soft_wrap=True,
        )
    failed = sum(r.verdict is Verdict.FAIL for r in results)
    summary = f"{failed} check(s) failed" if failed else "all configured checks passed"
    console.print(f"[{'bold red' if failed else 'green'}]{summary}[/]", highlight=False)


def exit_status(results: list[Result]) -> int:
    return 1 if any(r.verdict is Verdict.FAIL for r in results) else 0


def quiet_libraries(*, show: bool) -> None:
    """Keep the libraries' log lines out of the report: each check states what failed.

    Without a handler, Python prints a library's warnings as bare text lines
    (aiokafka's "Unable connect to ...") among the results. With ``show`` they
    are printed on stderr as JSON lines, repeated ones collapsed.
    """
    if show:
        logs.configure("clickstream-check", level="warning", fmt="json")
        return
    root = logging.getLogger()
    root.handlers[:] = [logging.NullHandler()]
    logging.captureWarnings(True)  # a library's warnings.warn() would print too


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="clickstream-check",
        description="Check Kafka, PostgreSQL, OpenSearch and Dashboards step by step.",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per network step")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="also print the client libraries' own log lines (aiokafka, asyncpg), as JSON",
    )
    args = parser.parse_args(argv)
    quiet_libraries(show=args.debug)
    results = asyncio.run(run_checks(load_all(), args.timeout))
    if args.json:
        for result in results:
            print(json.dumps(asdict(result)))
    else:
        print_results(Console(), results)
    sys.exit(exit_status(results))
