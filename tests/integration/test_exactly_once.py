"""The exactly-once promise under faults, with several aggregator processes.

One seeded topic (valid events, 1% duplicates, 0.5% poison of every kind, late
and out-of-order events) is consumed by a fresh group and database in each
scenario; afterwards every session row must equal the reference computed from
the topic, and the dead-letter topic must hold exactly the poison messages.
Faults are triggered by progress (offsets committed), never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from clickstream_devstack.environment import (
    Database,
    KafkaTopics,
    create_topics,
    service_env,
)
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_devstack.services import Service, ServiceGroup
from clickstream_schema import InvalidEvent, decode
from support.aggregator import applied_offsets
from support.dataset import MAX_BYTES, build
from support.feed import publish, read_all, read_back, valid_events
from support.reference import differences, expected_rows, stored_rows

pytestmark = [
    pytest.mark.faults,
    pytest.mark.timeout(600),
    pytest.mark.one_broker("the fault suite runs once: on Apache Kafka where Java is present"),
]

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
    cluster.wait_logged("r3", "partitions_assigned")
    await cluster.wait_applied(fault_topic.total // 2)
    assert cluster.stop("r2") == 0
    await cluster.finish(fault_topic, kafka)


async def test_frozen_replica_is_fenced_when_it_resumes(
    cluster: Cluster, fault_topic: FaultTopic, kafka: EmbeddedKafka
) -> None:
    """A replica frozen past its session loses its partitions; once it resumes it must
    not write a single row for them.

    The test broker (Tansu) never evicts a member whose connection stays open, so
    the group would simply wait for the frozen replica. The takeover is therefore
    done the way a new owner's claim does it: by bumping the partitions' epochs in
    PostgreSQL while the replica is stopped. A real Kafka would move the partitions
    and the new owner's claim would do exactly this.
    """
    for name in ("r1", "r2", "r3"):
        cluster.start(name)
    for name in ("r1", "r2", "r3"):
        cluster.wait_logged(name, "partitions_assigned")
    await cluster.wait_applied(fault_topic.total // 5)
    deadline = asyncio.get_running_loop().time() + 60
    taken: list[int] = []
    while not taken:
        # Rebalances may still move partitions around: freeze r1 while it owns some.
        assert asyncio.get_running_loop().time() < deadline, "r1 never kept a partition"
        if not await cluster.query(
            "SELECT count(*) FROM consumer_offsets WHERE group_id = $1 AND owner = 'r1'",
            cluster.topics.group,
        ):
            await asyncio.sleep(0.2)
            continue
        cluster.signal("r1", signal.SIGSTOP)
        try:
            taken = await cluster.take_over("r1")
            taken_at = datetime.now(UTC).isoformat()
        finally:
            cluster.signal("r1", signal.SIGCONT)
    assert taken, "r1 owned no partition"
    # Give the zombie the chance to try its stale batch, then let it leave the group
    # so the others claim the partitions (a real Kafka would already have moved them).
    with contextlib.suppress(AssertionError):
        await cluster.wait_for_log("r1", "fenced", timeout=15)
    assert cluster.stop("r1") == 0
    await cluster.finish(fault_topic, kafka)

    # Once its partitions were taken, the zombie wrote nothing for them: every
    # later attempt was either fenced or dropped at revocation.
    late = [
        entry
        for entry in cluster.log_entries("r1")
        if entry["event"] == "batch_committed"
        and entry["timestamp"] > taken_at
        and set(entry["partitions"]) & set(taken)
        and not cluster.reclaimed(
            "r1", set(entry["partitions"]) & set(taken), taken_at, entry["timestamp"]
        )
    ]
    assert late == []
    print(f"zombie r1: fenced {cluster.log_events('fenced')} time(s), partitions {taken}")


async def test_postgres_restart_mid_run(
    cluster: Cluster, fault_topic: FaultTopic, kafka: EmbeddedKafka, postgres: EmbeddedPostgres
) -> None:
    for name in ("r1", "r2", "r3"):
        cluster.start(name)
    await cluster.wait_applied(fault_topic.total // 4, poll_s=0.02)
    # PostgreSQL goes down (immediate: a crash for its clients) while the replicas are
    # frozen, so that it meets them with work left however fast they apply; it comes
    # back once they have met the outage.
    frozen = list(cluster.replicas)
    for name in frozen:
        cluster.signal(name, signal.SIGSTOP)
    try:
        # The session's server runs with synchronous_commit off, where a crash loses
        # commits it acknowledged (docs/exactly-once.md, the open limit). The crash
        # here stands for one of a durable server, as users run: what the server
        # acknowledged before the freeze is written out first.
        await asyncio.to_thread(postgres.psql, "CHECKPOINT")
        await asyncio.to_thread(postgres.stop, "immediate")
    finally:
        for name in frozen:
            cluster.signal(name, signal.SIGCONT)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while cluster.log_events("batch_retry") == 0:
            cluster.assert_running()
            assert asyncio.get_running_loop().time() < deadline, "no batch met the outage"
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(postgres.start)
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


@pytest.mark.soak
async def test_soak_kills_and_scaling_for_the_whole_run(
    cluster: Cluster, fault_topic: FaultTopic, kafka: EmbeddedKafka
) -> None:
    """`make soak` (with e.g. FAULT_SUITE_EVENTS=1000000): a kill or a scale step at
    every twelfth of the run."""
    rng = random.Random(9)
    for name in ("r1", "r2"):
        cluster.start(name)
    for step in range(1, 12):
        await cluster.wait_applied(fault_topic.total * step // 12)
        if step % 3 == 0 and "r3" not in cluster.replicas:
            cluster.start("r3")
        else:
            victim = rng.choice(sorted(cluster.replicas))
            cluster.kill(victim)
            cluster.start(victim)
    await cluster.finish(fault_topic, kafka)
