"""The bench's servers and the fresh topics and databases each scenario gets.

One broker and one PostgreSQL for the whole run (starting them is not what we
measure); every scenario gets its own topic, consumer group and database so no
figure is helped or hurt by what ran before it. The broker is Tansu (embedded,
in memory) or Apache Kafka (KRaft, log on disk, from ``.cache/jvm``).
"""

from __future__ import annotations

import dataclasses
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import asyncpg
import structlog

from clickstream_devstack.bench import BenchError
from clickstream_devstack.environment import (
    EVENTS_PARTITIONS,
    Database,
    KafkaTopics,
    create_topics,
    service_env,
)
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_devstack.services import ServiceGroup

#: The settings that decide what a commit costs; read from the server, never assumed.
DURABILITY = ("fsync", "synchronous_commit", "full_page_writes", "wal_level")

BrokerKind = Literal["tansu", "apache-kafka"]
#: How the table names each broker.
BROKER_NAMES: dict[BrokerKind, str] = {"tansu": "Tansu", "apache-kafka": "Apache Kafka"}

log = structlog.get_logger()


class Rig:
    """Broker + durable PostgreSQL under ``work_dir``; stopped when ``stack`` closes."""

    def __init__(self, stack: ExitStack, work_dir: Path, broker: BrokerKind = "tansu") -> None:
        self.work_dir = work_dir
        self.broker = broker
        self._stack = stack
        self._brokers = 1
        self.kafka = self._start_broker(work_dir / "kafka")
        # durable=True: fsync and synchronous commit on, as on a real server; the
        # aggregator commits once per batch, so this is part of its cost.
        self.postgres = stack.enter_context(EmbeddedPostgres(work_dir / "postgres", durable=True))
        #: As the server reports them, for the table: the WAL and CPU figures assume them on.
        self.durability = {name: self.postgres.psql(f"SHOW {name}").strip() for name in DURABILITY}
        if self.durability["fsync"] != "on":
            raise BenchError(f"PostgreSQL runs with fsync={self.durability['fsync']}, not on")

    @property
    def postgres_pid(self) -> int:
        """The postmaster: its process tree is every process of the server."""
        pid = self.postgres.pid
        if pid is None:
            raise BenchError("PostgreSQL is not running")
        return pid

    def durability_note(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in self.durability.items())

    def topics(self, label: str, partitions: int = EVENTS_PARTITIONS) -> KafkaTopics:
        topics = KafkaTopics.unique(f"bench-{label}", partitions=partitions)
        create_topics(self.kafka, topics)
        log.info("topic_created", topic=topics.events, partitions=partitions)
        return topics

    @staticmethod
    def new_group(topics: KafkaTopics, label: str) -> KafkaTopics:
        """The same topic read by a consumer group nobody has used yet."""
        return dataclasses.replace(topics, group=f"bench-{label}-{uuid.uuid4().hex[:10]}")

    def database(self, label: str) -> Database:
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        self.postgres.create_database(name)
        return Database.on(self.postgres, name)

    def fresh_broker(self) -> None:
        """Replace the broker with an empty one.

        Tansu (the embedded broker) keeps its log in memory, and with a few
        million retained events its produce and fetch latencies grow; a real
        broker's log on disk would not. Scenarios after the throughput runs get a
        broker of their own, so no figure pays for the data of another (Apache
        Kafka too, so that both brokers are measured the same way).
        """
        self.kafka.stop()
        self._brokers += 1
        self.kafka = self._start_broker(self.work_dir / f"kafka-{self._brokers}")

    def _start_broker(self, work_dir: Path) -> EmbeddedKafka | ApacheKafka:
        if self.broker == "apache-kafka":
            return self._stack.enter_context(ApacheKafka(work_dir))
        return self._stack.enter_context(EmbeddedKafka(work_dir))

    def settle(self, *finished: Database) -> None:
        """Drop the databases of finished scenarios and checkpoint.

        Otherwise autovacuum and the checkpointer work through the previous
        scenario's millions of rows while the next one is measured.
        """
        for database in finished:
            self.postgres.drop_database(database.name)
        self.postgres.psql("CHECKPOINT")

    def env(self, topics: KafkaTopics, database: Database, **extra: Any) -> dict[str, str]:
        return service_env(self.kafka, topics, database, **extra)

    def services(self, scenario: str) -> ServiceGroup:
        """A group whose processes log to ``logs/<scenario>/``; use it with ``with``."""
        return ServiceGroup(self.work_dir / "logs" / scenario, cwd=self.work_dir)

    def client_options(self) -> dict[str, Any]:
        return self.kafka.client_options()


async def committed(connection: asyncpg.Connection, topics: KafkaTopics) -> int:
    """Messages of ``topics.events`` the group has committed (0 before the first migration)."""
    try:
        value = await connection.fetchval(
            "SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets "
            "WHERE group_id = $1 AND topic = $2",
            topics.group,
            topics.events,
        )
    except asyncpg.UndefinedTableError:
        return 0
    return int(value)
