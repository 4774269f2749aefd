"""Aggregator replicas of one consumer group as real processes, and the topic they share.

The fault suites (``tests/integration/test_exactly_once.py`` on either broker,
``tests/real/test_kafka_exactly_once.py`` with transaction markers on Apache
Kafka) and the real tier's cluster and tool tests drive the aggregator through
:class:`Cluster`: start, kill, freeze and stop replicas, wait on what they
applied, and, in :meth:`Cluster.finish`, check exactness against the reference.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import asyncpg

from clickstream_devstack.environment import (
    Broker,
    Database,
    KafkaTopics,
    create_topics,
    service_env,
)
from clickstream_devstack.services import Service, ServiceGroup
from clickstream_schema import InvalidEvent, decode
from support.aggregator import applied_offsets, wait_relayed
from support.database import fetchval
from support.dataset import MAX_BYTES
from support.reference import differences, stored_rows
from support.topic_reader import read_topic

#: The replicas' session timeout: a frozen replica is evicted after this (Apache Kafka).
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000


@dataclass(frozen=True)
class FaultTopic:
    topic: str
    total: int
    reference: dict[str, dict[str, Any]]
    poison: list[tuple[int, int]]  # (partition, offset) of every invalid message
    #: Sessions whose events only aborted transactions carry: none may be applied.
    aborted_sessions: frozenset[str] = frozenset()


#: (partition, offset, key, value), as ``support.feed.read_back`` reads them.
Message = tuple[int, int, bytes | None, bytes | None]


def poison_positions(messages: Sequence[Message]) -> list[tuple[int, int]]:
    """(partition, offset) of every message the aggregator must dead-letter."""
    poison = []
    for partition, offset, _key, value in messages:
        try:
            decode(value, max_bytes=MAX_BYTES)
        except InvalidEvent:
            poison.append((partition, offset))
    return poison


class Cluster:
    """Aggregator replicas of one consumer group, launched as real processes."""

    def __init__(
        self, services: ServiceGroup, env: dict[str, str], database: Database, topics: KafkaTopics
    ) -> None:
        self.services = services
        self.env = env
        self.database = database
        self.topics = topics
        self.replicas: dict[str, Service] = {}
        self.retired: list[Service] = []

    def start(self, name: str) -> Service:
        if name in self.replicas:
            self.retired.append(self.replicas[name])
        service = self.services.launch(
            "clickstream-aggregator",
            env={**self.env, "AGGREGATOR_REPLICA_ID": name},
            name=f"{name}-{len(self.retired)}",
        )
        self.replicas[name] = service
        return service

    def signal(self, name: str, signum: signal.Signals) -> None:
        self.replicas[name].process.send_signal(signum)

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)
        self.replicas[name].process.wait(timeout=10)

    def wait_logged(self, name: str, event: str, timeout: float = 60.0) -> None:
        """Block until replica ``name`` has logged ``event`` (e.g. it joined the group)."""
        service = self.replicas[name]
        deadline = time.monotonic() + timeout
        while f'"event":"{event}"' not in service.log_path.read_text(errors="replace"):
            assert service.running, f"replica {name} died:\n{service.describe_exit()}"
            assert time.monotonic() < deadline, f"{name} never logged {event}"
            time.sleep(0.1)

    def stop(self, name: str) -> int:
        # Signal handlers exist once the service logs its start; a SIGTERM during
        # the imports before that would kill it instead of stopping it.
        self.wait_logged(name, "aggregator_starting")
        service = self.replicas.pop(name)
        self.retired.append(service)
        return self.services.stop(service, timeout=20)

    async def applied(self) -> int:
        return await applied_offsets(self.database.dsn, self.topics.group, self.topics.events)

    async def wait_applied(
        self, at_least: int, timeout: float = 240.0, *, poll_s: float = 0.2
    ) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while (done := await self.applied()) < at_least:
            self.assert_running()
            assert asyncio.get_running_loop().time() < deadline, f"stuck at {done}/{at_least}"
            await asyncio.sleep(poll_s)

    def assert_running(self) -> None:
        for name, service in self.replicas.items():
            assert service.running, f"replica {name} died:\n{service.describe_exit()}"

    async def take_over(self, name: str) -> list[int]:
        """Claim ``name``'s partitions as a new owner would (epoch + 1); wait for its locks."""
        while True:
            conn = await asyncpg.connect(self.database.dsn)
            try:
                # A replica frozen inside a transaction holds its rows until it resumes.
                await conn.execute("SET lock_timeout = '2s'")
                rows = await conn.fetch(
                    "UPDATE consumer_offsets SET epoch = epoch + 1, owner = 'takeover' "
                    "WHERE group_id = $1 AND owner = $2 RETURNING partition",
                    self.topics.group,
                    name,
                )
                return sorted(r["partition"] for r in rows)
            except asyncpg.LockNotAvailableError:
                # Frozen inside a transaction: let it run briefly to finish it.
                self.signal(name, signal.SIGCONT)
                await asyncio.sleep(0.5)
                self.signal(name, signal.SIGSTOP)
            finally:
                await conn.close()

    async def wait_for_log(self, name: str, event: str, timeout: float = 60.0) -> None:
        await asyncio.to_thread(self.wait_logged, name, event, timeout)

    async def query(self, sql: str, *args: object) -> Any:
        return await fetchval(self.database.dsn, sql, *args)

    @classmethod
    def on(
        cls,
        kafka: Broker,
        fault: FaultTopic,
        database: Database,
        services: ServiceGroup,
        *,
        partitions: int,
        prefix: str,
        batch_max_records: int,
    ) -> Self:
        """Replicas of a fresh group reading ``fault``'s topic, with a dead-letter topic
        of their own."""
        mine = KafkaTopics.unique(prefix=prefix, partitions=partitions)
        create_topics(kafka, mine)
        topics = KafkaTopics(
            events=fault.topic, dlq=mine.dlq, group=mine.group, partitions=partitions
        )
        env = service_env(
            kafka,
            topics,
            database,
            AGGREGATOR_MAX_MESSAGE_BYTES=MAX_BYTES,
            KAFKA_SESSION_TIMEOUT_MS=SESSION_TIMEOUT_MS,
            KAFKA_HEARTBEAT_INTERVAL_MS=HEARTBEAT_INTERVAL_MS,
            AGGREGATOR_RETRY_MAX_S=2,
            AGGREGATOR_BATCH_MAX_RECORDS=batch_max_records,
            LOG_LEVEL="info",
        )
        return cls(services, env, database, topics)

    async def finish(self, fault: FaultTopic, kafka: Broker) -> None:
        """Wait for everything to be applied and relayed, stop cleanly, check exactness.

        The dead-letter topic is read ``read_committed``: the relay is transactional
        where the broker has transactions, and a copy from an aborted relay
        transaction stays in the log, invisible to such readers (and to Connect)."""
        await self.wait_applied(fault.total)
        await wait_relayed(self.database.dsn, timeout=60)
        for name in list(self.replicas):
            assert self.stop(name) == 0, f"{name} did not exit cleanly"

        stored = await stored_rows(self.database.dsn)
        assert differences(fault.reference, stored) == []
        assert len(stored) == len(fault.reference)
        assert fault.aborted_sessions.isdisjoint(stored)

        copies = await read_topic(kafka.bootstrap, self.topics.dlq, self.topics.partitions)
        positions = [
            (
                int(c.headers["__connect.errors.partition"]),
                int(c.headers["__connect.errors.offset"]),
            )
            for c in copies
        ]
        assert sorted(positions) == sorted(fault.poison)  # each exactly once
        assert {c.headers["__connect.errors.topic"] for c in copies} == {fault.topic.encode()}

    def log_entries(self, name: str) -> list[dict[str, Any]]:
        entries = []
        for service in [*self.retired, *self.replicas.values()]:
            if service.name.startswith(f"{name}-"):
                for line in service.log_path.read_text(errors="replace").splitlines():
                    if line.startswith("{"):
                        entries.append(json.loads(line))
        return entries

    def reclaimed(self, name: str, partitions: set[int], after: str, before: str) -> bool:
        """Did ``name`` claim these partitions anew (a new assignment) in (after, before)?"""
        return any(
            entry["event"] == "partitions_claimed"
            and after < entry["timestamp"] < before
            and partitions <= set(entry["partitions"])
            for entry in self.log_entries(name)
        )

    def log_events(self, event: str) -> int:
        needle = f'"event":"{event}"'
        return sum(
            s.log_path.read_text(errors="replace").count(needle)
            for s in [*self.retired, *self.replicas.values()]
        )
