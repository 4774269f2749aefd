"""``clickstream-setup {kafka,opensearch,all}...``: create what the pipeline needs, idempotently.

Also the one-shot job of the local Compose file: it waits (bounded) for the
services, applies what is missing or different, and exits 0; any failure is a
single line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from collections.abc import Sequence
from typing import Any, Final, Literal, get_args

import structlog

from clickstream_ops.setup.client import SetupError, Sleep, sleep_unless_stopped
from clickstream_ops.setup.kafka import ensure_topics
from clickstream_ops.setup.opensearch import setup_opensearch
from clickstream_ops.setup.settings import NOT_CONFIGURED, SetupSettings
from clickstream_runtime.entrypoint import serve
from clickstream_runtime.logs import configure
from clickstream_runtime.settings import load

log = structlog.get_logger()

#: Settings the command line can set, by the flag the user types (named in errors).
FLAGS: Final = {
    "kafka_topic_partitions": "--partitions",
    "kafka_topic_replication": "--replication",
    "opensearch_retention_days": "--retention-days",
}

Target = Literal["kafka", "opensearch"]
TARGETS: Final[tuple[Target, ...]] = get_args(Target)


async def run(
    settings: SetupSettings,
    stop: asyncio.Event,
    *,
    targets: Sequence[Target] = TARGETS,
    sleep: Sleep | None = None,
) -> None:
    """Set up each target in order; ``sleep`` is injectable so tests never wait."""
    if "opensearch" in targets and settings.opensearch_uri is None:
        # Before Kafka too: `all` must not half-run and then fail on what was known at start.
        raise SetupError(NOT_CONFIGURED)
    pause = sleep or functools.partial(sleep_unless_stopped, stop)
    if "kafka" in targets:
        await setup_kafka(settings)
    if "opensearch" in targets:
        await setup_opensearch(settings, sleep=pause)


async def setup_kafka(settings: SetupSettings) -> list[str]:
    partitions = settings.kafka_topic_partitions
    topics = {settings.kafka_topic: partitions, settings.kafka_dlq_topic: partitions}
    created = await ensure_topics(
        settings.kafka_client_options(), topics, replication=settings.kafka_topic_replication
    )
    log.info("kafka_ready", created=created, partitions=partitions)
    return created


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clickstream-setup",
        description="Create the Kafka topics and/or the OpenSearch assets; safe to re-run.",
    )
    parser.add_argument(
        "targets",
        nargs="+",
        choices=[*TARGETS, "all"],
        help="what to set up ('all' = kafka then opensearch)",
    )
    parser.add_argument(
        "--partitions", type=int, help="partitions of new topics (env KAFKA_TOPIC_PARTITIONS, 6)"
    )
    parser.add_argument(
        "--replication", type=int, help="replication of new topics (env KAFKA_TOPIC_REPLICATION, 1)"
    )
    parser.add_argument(
        "--retention-days", type=int, help="days to keep indices (env OPENSEARCH_RETENTION_DAYS, 7)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("kafka_topic_partitions", args.partitions),
            ("kafka_topic_replication", args.replication),
            ("opensearch_retention_days", args.retention_days),
        )
        if value is not None
    }
    settings = load(SetupSettings, flags=FLAGS, **overrides)
    configure("clickstream-setup", level=settings.log_level, fmt=settings.log_format)
    targets = TARGETS if "all" in args.targets else tuple(t for t in TARGETS if t in args.targets)
    serve(functools.partial(run, targets=targets), settings)
