"""What a service process needs to run against the embedded servers.

Shared by the demo, the benchmark and the pytest fixtures, so that all three
launch services exactly the way an operator would: through environment
variables only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_ops.setup.kafka import ensure_topics

#: Variables a developer's shell may carry for a real deployment; scrubbed so a
#: local service can never reach Aiven by accident.
_PIPELINE_PREFIXES = ("KAFKA_", "POSTGRES_", "OPENSEARCH_", "METRICS_", "LOG_")
EVENTS_PARTITIONS = 6


class Broker(Protocol):
    """What the services need of a broker: the embedded one or Apache Kafka."""

    @property
    def bootstrap(self) -> str: ...

    def client_options(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class KafkaTopics:
    """An events topic, its dead-letter topic and the consumer group reading it."""

    events: str
    dlq: str
    group: str
    partitions: int = EVENTS_PARTITIONS

    @classmethod
    def unique(
        cls, prefix: str = "clickstream", partitions: int = EVENTS_PARTITIONS
    ) -> KafkaTopics:
        suffix = uuid.uuid4().hex[:10]
        return cls(
            events=f"{prefix}-events-{suffix}",
            dlq=f"{prefix}-events-{suffix}-dlq",
            group=f"{prefix}-group-{suffix}",
            partitions=partitions,
        )

    def partition_counts(self) -> dict[str, int]:
        # Like `clickstream-setup kafka`: the dead-letter topic mirrors the events topic.
        return {self.events: self.partitions, self.dlq: self.partitions}

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_TOPIC": self.events,
            "KAFKA_DLQ_TOPIC": self.dlq,
            "KAFKA_GROUP_ID": self.group,
        }


@dataclass(frozen=True)
class Database:
    """A database on the embedded PostgreSQL, with its DSN and POSTGRES_* variables."""

    name: str
    dsn: str
    env: dict[str, str] = field(repr=False)

    @classmethod
    def on(cls, postgres: EmbeddedPostgres, name: str) -> Database:
        return cls(name=name, dsn=postgres.dsn(name), env=postgres.env(name))


def create_topics(kafka: Broker, topics: KafkaTopics) -> list[str]:
    """Create ``topics`` from synchronous code, even when an event loop is running.

    The admin client runs on a private loop in a worker thread, so this works in
    sync fixtures and inside async tests alike.
    """

    def run() -> list[str]:
        return asyncio.run(ensure_topics(kafka.client_options(), topics.partition_counts()))

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=60)


def service_env(
    kafka: Broker,
    topics: KafkaTopics,
    database: Database,
    *,
    base: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, str]:
    """A complete environment for a service subprocess.

    ``base`` (default: ours) minus any pipeline variables, plus the broker,
    topics, database, metrics off and JSON logs; ``extra`` adds or overrides.
    Run the subprocess with a ``cwd`` that has no ``.env`` file: pydantic-settings
    reads ``.env`` for any variable not set here (TLS files, for one).
    """
    inherited = os.environ if base is None else base
    env = {k: v for k, v in inherited.items() if not k.upper().startswith(_PIPELINE_PREFIXES)}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            **topics.env(),
            **database.env,
            "METRICS_PORT": "0",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env
