"""The exactly-once promise under faults, with several aggregator processes.

One seeded topic (valid events, 1% duplicates, 0.5% poison of every kind, late
and out-of-order events) is consumed by a fresh group and database in each
scenario; afterwards every session row must equal the reference computed from
the topic, and the dead-letter topic must hold exactly the poison messages.
Faults are triggered by progress (offsets committed), never by sleeping.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from clickstream_devstack.broker import EmbeddedKafka
from clickstream_devstack.environment import (
    Database,
    KafkaTopics,
    create_topics,
    service_env,
)
from clickstream_devstack.postgres import EmbeddedPostgres
from clickstream_devstack.services import Service, ServiceGroup
from clickstream_schema import InvalidEvent, decode
from support.aggregator import applied_offsets
from support.dataset import MAX_BYTES, build
from support.feed import publish, read_all, read_back, valid_events
from support.reference import differences, expected_rows, stored_rows

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

EVENTS = int(os.environ.get("FAULT_SUITE_EVENTS", "200000"))
PARTITIONS = 6


@dataclass(frozen=True)
class FaultTopic:
    topic: str
    total: int
    reference: dict[str, dict[str, Any]]
    poison: list[tuple[int, int]]  # (partition, offset) of every invalid message


@pytest.fixture(scope="module")
def fault_topic(kafka: EmbeddedKafka) -> FaultTopic:
    topics = KafkaTopics.unique(prefix="faults", partitions=PARTITIONS)
    create_topics(kafka, topics)
    data = build(EVENTS)

    async def fill() -> list[tuple[int, int, bytes | None, bytes | None]]:
        await publish(kafka.bootstrap, topics.events, data.messages)
        return await read_back(kafka.bootstrap, topics.events, PARTITIONS)

    messages = asyncio.run(fill())
    poison = []
    for partition, offset, _key, value in messages:
        try:
            decode(value, max_bytes=MAX_BYTES)
        except InvalidEvent:
            poison.append((partition, offset))
    assert len(poison) == len(data.poison)
    return FaultTopic(
        topic=topics.events,
        total=len(messages),
        reference=expected_rows(valid_events(messages)),
        poison=poison,
    )


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

    def stop(self, name: str) -> int:
        service = self.replicas.pop(name)
        self.retired.append(service)
        return self.services.stop(service, timeout=20)

    async def applied(self) -> int:
        return await applied_offsets(self.database.dsn, self.topics.group, self.topics.events)

    async def wait_applied(self, at_least: int, timeout: float = 240.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while (done := await self.applied()) < at_least:
            for name, service in self.replicas.items():
                assert service.running, f"replica {name} died:\n{service.describe_exit()}"
            assert asyncio.get_running_loop().time() < deadline, f"stuck at {done}/{at_least}"
            await asyncio.sleep(0.2)

    async def query(self, sql: str, *args: object) -> Any:
        conn = await asyncpg.connect(self.database.dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def finish(self, fault: FaultTopic, kafka: EmbeddedKafka) -> None:
        """Wait for everything to be applied and relayed, stop cleanly, check exactness."""
        await self.wait_applied(fault.total)
        deadline = asyncio.get_running_loop().time() + 60
        while await self.query("SELECT count(*) FROM dead_letters WHERE relayed_at IS NULL"):
            assert asyncio.get_running_loop().time() < deadline, "dead letters not relayed"
            await asyncio.sleep(0.2)
        for name in list(self.replicas):
            assert self.stop(name) == 0, f"{name} did not exit cleanly"

        stored = await stored_rows(self.database.dsn)
        assert differences(fault.reference, stored) == []
        assert len(stored) == len(fault.reference)

        copies = await read_all(kafka.bootstrap, self.topics.dlq, self.topics.partitions)
        positions = [
            (int(h["__connect.errors.partition"]), int(h["__connect.errors.offset"]))
            for _p, _o, h, _k, _v in copies
        ]
        assert sorted(positions) == sorted(fault.poison)  # each exactly once
        assert {h["__connect.errors.topic"] for _p, _o, h, _k, _v in copies} == {
            fault.topic.encode()
        }

    def log_events(self, event: str) -> int:
        needle = f'"event":"{event}"'
        return sum(
            s.log_path.read_text(errors="replace").count(needle)
            for s in [*self.retired, *self.replicas.values()]
        )


@pytest.fixture
def cluster(
    kafka: EmbeddedKafka, fault_topic: FaultTopic, database: Database, services: ServiceGroup
) -> Iterator[Cluster]:
    mine = KafkaTopics.unique(prefix="faults-run", partitions=PARTITIONS)
    create_topics(kafka, mine)  # creates the per-scenario dead-letter topic
    topics = KafkaTopics(
        events=fault_topic.topic, dlq=mine.dlq, group=mine.group, partitions=PARTITIONS
    )
    env = service_env(
        kafka,
        topics,
        database,
        AGGREGATOR_MAX_MESSAGE_BYTES=MAX_BYTES,
        KAFKA_SESSION_TIMEOUT_MS=6000,
        KAFKA_HEARTBEAT_INTERVAL_MS=1000,
        AGGREGATOR_RETRY_MAX_S=2,
        AGGREGATOR_BATCH_MAX_RECORDS=5000,
        LOG_LEVEL="info",
    )
    return Cluster(services, env, database, topics)


async def test_baseline_three_replicas(
    cluster: Cluster, fault_topic: FaultTopic, kafka: EmbeddedKafka
) -> None:
    for name in ("r1", "r2", "r3"):
        cluster.start(name)
    await cluster.finish(fault_topic, kafka)


async def test_sigkill_a_random_replica_again_and_again(
    cluster: Cluster, fault_topic: FaultTopic, kafka: EmbeddedKafka
) -> None:
    rng = random.Random(5)
    for name in ("r1", "r2", "r3"):
        cluster.start(name)
    kills = 0
    for step in range(1, 5):
        await cluster.wait_applied(fault_topic.total * step // 6)
        victim = rng.choice(sorted(cluster.replicas))
        cluster.kill(victim)
        cluster.start(victim)
        kills += 1
    await cluster.finish(fault_topic, kafka)
    assert kills == 4


async def test_scale_one_to_three_to_two(
    cluster: Cluster, fault_topic: FaultTopic, kafka: EmbeddedKafka
) -> None:
    cluster.start("r1")
    await cluster.wait_applied(fault_topic.total // 5)
    cluster.start("r2")
    cluster.start("r3")
    await cluster.wait_applied(fault_topic.total // 2)
    assert cluster.stop("r2") == 0
    await cluster.finish(fault_topic, kafka)


async def test_frozen_replica_is_fenced_when_it_resumes(
    cluster: Cluster, fault_topic: FaultTopic, kafka: EmbeddedKafka
) -> None:
    for name in ("r1", "r2", "r3"):
        cluster.start(name)
    await cluster.wait_applied(fault_topic.total // 5)
    cluster.signal("r1", signal.SIGSTOP)
    try:
        # Past the session timeout the group moves r1's partitions to the others,
        # whose claims take them over in PostgreSQL.
        deadline = asyncio.get_running_loop().time() + 60
        while await cluster.query(
            "SELECT count(*) FROM consumer_offsets WHERE group_id = $1 AND owner = 'r1'",
            cluster.topics.group,
        ):
            assert asyncio.get_running_loop().time() < deadline, "r1's partitions never moved"
            await asyncio.sleep(0.2)
    finally:
        cluster.signal("r1", signal.SIGCONT)
    await cluster.finish(fault_topic, kafka)
    assert cluster.log_events("fenced") >= 1


async def test_postgres_restart_mid_run(
    cluster: Cluster, fault_topic: FaultTopic, kafka: EmbeddedKafka, postgres: EmbeddedPostgres
) -> None:
    for name in ("r1", "r2", "r3"):
        cluster.start(name)
    await cluster.wait_applied(fault_topic.total // 4)
    await asyncio.to_thread(postgres.restart, "immediate")
    await cluster.finish(fault_topic, kafka)
    assert cluster.log_events("batch_retry") >= 1


async def test_duplicates_across_a_full_restart(
    cluster: Cluster, fault_topic: FaultTopic, kafka: EmbeddedKafka
) -> None:
    for name in ("r1", "r2"):
        cluster.start(name)
    await cluster.wait_applied(fault_topic.total // 2)
    for name in ("r1", "r2"):
        assert cluster.stop(name) == 0
    for name in ("r1", "r2"):
        cluster.start(name)
    await cluster.finish(fault_topic, kafka)
