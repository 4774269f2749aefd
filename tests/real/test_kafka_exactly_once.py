"""The exactly-once promise on Apache Kafka, where the broker's behaviour matters.

One topic for the module, written the way production writes it: our events
(1% duplicates, 0.5% poison, late and out-of-order ones) by an idempotent
producer, with a transactional writer beside it committing and aborting batches
on every partition, so offsets have gaps (transaction markers, aborted records)
that the aggregator must step over. Each scenario consumes it with a fresh group,
dead-letter topic and database; afterwards every session row equals the
independent reference (computed from what a ``read_committed`` reader sees), no
aborted event was applied, and the dead-letter topic holds each poison message
once.

Unlike the test broker, Apache Kafka evicts a group member that stops
heartbeating: the zombie scenario freezes a replica (SIGSTOP) past
``session.timeout.ms``, lets the group move its partitions, and resumes it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from clickstream_devstack.environment import Database, KafkaTopics, create_topics
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.services import ServiceGroup
from clickstream_schema import encode
from support.dataset import build
from support.fault_cluster import (
    HEARTBEAT_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    Cluster,
    FaultTopic,
    Message,
    poison_positions,
)
from support.feed import generate, publish, read_back, valid_events
from support.reference import expected_rows

pytestmark = [pytest.mark.timeout(600)]

EVENTS = int(os.environ.get("REAL_FAULT_SUITE_EVENTS", "40000"))
PARTITIONS = 6
#: Transactional rounds: each commits and aborts a batch on every partition.
ROUNDS = 3
PER_PARTITION = 20


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def write_transactions(bootstrap: str, topic: str) -> set[str]:
    """Commit and abort batches on every partition; the sessions of the aborted events."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{topic}-beside", acks="all"
    )
    aborted: set[str] = set()
    await producer.start()
    try:
        for round_ in range(ROUNDS):
            committed = generate(PARTITIONS * PER_PARTITION, seed=900 + round_, sessions=20)
            doomed = generate(PARTITIONS * PER_PARTITION, seed=950 + round_, sessions=20)
            # A session's events on one partition (the reference's order is per partition),
            # and the sessions spread over every partition, so each one gets markers.
            spread = {
                sid: i % PARTITIONS
                for events in (committed, doomed)
                for i, sid in enumerate(sorted({e.session_id for e in events}))
            }
            async with producer.transaction():
                for event in committed:
                    key, value = encode(event)
                    await producer.send(
                        topic, key=key, value=value, partition=spread[event.session_id]
                    )
                # A poison message inside a committed transaction is dead-lettered too.
                await producer.send(topic, value=b"{not json", partition=round_ % PARTITIONS)
            await producer.begin_transaction()
            for event in doomed:
                key, value = encode(event)
                await producer.send(topic, key=key, value=value, partition=spread[event.session_id])
            await producer.send(topic, value=b"{aborted poison", partition=round_ % PARTITIONS)
            await producer.abort_transaction()
            aborted |= {e.session_id for e in doomed}
    finally:
        await producer.stop()
    return aborted


@dataclass(frozen=True)
class MarkedTopic(FaultTopic):
    """A :class:`FaultTopic` whose ``total`` is the sum of end offsets (markers included)."""

    ends: dict[int, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def marked_topic(kafka: ApacheKafka) -> MarkedTopic:
    topics = KafkaTopics.unique(prefix="real-faults", partitions=PARTITIONS)
    create_topics(kafka, topics)
    data = build(EVENTS)
    half = len(data.messages) // 2

    async def fill() -> tuple[set[str], list[Message], dict[int, int]]:
        await publish(kafka.bootstrap, topics.events, data.messages[:half], idempotent=True)
        aborted = await write_transactions(kafka.bootstrap, topics.events)
        # Our events last: every partition ends with a plain record, not a marker.
        await publish(kafka.bootstrap, topics.events, data.messages[half:], idempotent=True)
        messages = await read_back(kafka.bootstrap, topics.events, PARTITIONS)  # read_committed
        return aborted, messages, await end_offsets(kafka.bootstrap, topics.events, PARTITIONS)

    aborted, messages, ends = asyncio.run(fill())
    poison = poison_positions(messages)
    assert len(poison) == len(data.poison) + ROUNDS  # ours and the committed ones, not aborted
    gaps = sum(ends.values()) - len(messages)
    # Each round leaves a commit and an abort marker per partition, and the aborted records.
    assert gaps == ROUNDS * (2 * PARTITIONS + PARTITIONS * PER_PARTITION + 1)
    return MarkedTopic(
        topic=topics.events,
        total=sum(ends.values()),
        reference=expected_rows(valid_events(messages)),
        poison=poison,
        aborted_sessions=frozenset(aborted),
        ends=ends,
    )


class RealCluster(Cluster):
    """The fault suite's cluster, with what the zombie scenario asks of PostgreSQL."""

    async def end_transactions_of(self, conn: asyncpg.Connection, name: str) -> int:
        """Terminate replica ``name``'s sessions inside a transaction or a query (it is
        frozen: they stay so) and wait until they are gone; how many there were."""
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
            "AND datname = $2 AND state <> 'idle'",
            f"clickstream-aggregator/{name}",
            self.database.name,
        )
        for row in pids:
            # Waits (up to 10 s) for the session to be gone; False if it already was.
            await conn.fetchval("SELECT pg_terminate_backend($1, 10000)", row["pid"])
        return len(pids)

    async def owners(self, partitions: Sequence[int]) -> dict[int, str]:
        return {p: owner for p, (owner, _next) in (await self.claims(partitions)).items()}

    async def claims(self, partitions: Sequence[int]) -> dict[int, tuple[str, int]]:
        """(owner, next offset) of each claimed partition."""
        conn = await asyncpg.connect(self.database.dsn)
        try:
            return await self.claims_on(conn, partitions)
        finally:
            await conn.close()

    async def claims_on(
        self, conn: asyncpg.Connection, partitions: Sequence[int]
    ) -> dict[int, tuple[str, int]]:
        rows = await conn.fetch(
            "SELECT partition, owner, next_offset FROM consumer_offsets "
            "WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])",
            self.topics.group,
            self.topics.events,
            list(partitions),
        )
        return {r["partition"]: (r["owner"], r["next_offset"]) for r in rows}


def takeover_offsets(cluster: RealCluster, partitions: Sequence[int], after: str) -> dict[int, int]:
    """The offset each partition was claimed at by its first new owner after ``after``."""
    claims = sorted(
        (entry["timestamp"], p, offset)
        for name in ("r2", "r3")
        for entry in cluster.log_entries(name)
        if entry["event"] == "partitions_claimed" and entry["timestamp"] > after
        for p, offset in zip(entry["partitions"], entry["offsets"], strict=True)
        if p in partitions
    )
    first: dict[int, int] = {}
    for _timestamp, p, offset in claims:
        first.setdefault(p, offset)
    return first


@pytest.fixture
def cluster(
    kafka: ApacheKafka, marked_topic: MarkedTopic, database: Database, services: ServiceGroup
) -> RealCluster:
    return RealCluster.on(
        kafka,
        marked_topic,
        database,
        services,
        partitions=PARTITIONS,
        prefix="real-faults-run",
        batch_max_records=2000,
    )


async def test_three_replicas_step_over_transaction_markers(
    cluster: RealCluster, marked_topic: MarkedTopic, kafka: ApacheKafka
) -> None:
    for name in ("r1", "r2", "r3"):
        cluster.start(name)
    await cluster.finish(marked_topic, kafka)


async def test_sigkill_a_replica_kafka_moves_its_partitions(
    cluster: RealCluster, marked_topic: MarkedTopic, kafka: ApacheKafka
) -> None:
    for name in ("r1", "r2"):
        cluster.start(name)
    for name in ("r1", "r2"):
        await cluster.wait_for_log(name, "partitions_assigned")
    await cluster.wait_applied(marked_topic.total // 4)
    cluster.kill("r1")
    cluster.retired.append(cluster.replicas.pop("r1"))
    # No restart: only the broker's eviction of r1 lets r2 finish its partitions.
    await cluster.finish(marked_topic, kafka)


async def test_a_frozen_replica_is_evicted_and_writes_nothing_when_it_resumes(
    cluster: RealCluster, marked_topic: MarkedTopic, kafka: ApacheKafka
) -> None:
    """SIGSTOP r1 while it owns partitions under way; Kafka evicts it after the session
    timeout and the others claim its partitions; then r1 resumes with whatever it had
    fetched. From the takeover on it must not write a single row for them.

    The freeze is taken at r1's first batch on a partition, not at a moment between
    its transactions: how long the topic lasts, and how often such a moment comes,
    depend on the machine's speed. A transaction the freeze caught r1 in is ended by
    terminating its PostgreSQL session, as a dropped connection would end it, so that
    the frozen r1 holds no row the new owners need; r1 finds out once it resumes."""
    # Small batches: plenty of topic left on r1's partitions when the freeze comes.
    cluster.env["AGGREGATOR_BATCH_MAX_RECORDS"] = "100"
    for name in ("r1", "r2", "r3"):
        cluster.start(name)
    for name in ("r1", "r2", "r3"):
        await cluster.wait_for_log(name, "partitions_assigned")

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    seen: object = None
    conn = await asyncpg.connect(cluster.database.dsn)
    try:
        while True:
            assert loop.time() < deadline, f"r1 never owned a partition under way: {seen}"
            claims = await cluster.claims_on(conn, range(PARTITIONS))
            # Partitions under way (some applied, more to come): frozen now, r1 has
            # records fetched or in flight for them.
            lagging = [
                p
                for p, (owner, next_offset) in claims.items()
                if owner == "r1" and 0 < next_offset < marked_topic.ends[p]
            ]
            if not lagging:
                seen = {"claims": claims, "ends": marked_topic.ends}
                await asyncio.sleep(0.01)
                continue
            cluster.signal("r1", signal.SIGSTOP)
            frozen = time.monotonic()
            claims = await cluster.claims_on(conn, range(PARTITIONS))
            owned = [p for p, (owner, _next) in claims.items() if owner == "r1"]
            if any(p in lagging for p in owned):  # still r1's once it stood still
                break
            cluster.signal("r1", signal.SIGCONT)
        ended = await cluster.end_transactions_of(conn, "r1")
    finally:
        await conn.close()
    frozen_at = datetime.now(UTC).isoformat()
    try:
        deadline = loop.time() + 90
        while any(owner == "r1" for owner in (await cluster.owners(owned)).values()):
            for name in ("r2", "r3"):
                service = cluster.replicas[name]
                assert service.running, f"replica {name} died:\n{service.describe_exit()}"
            assert loop.time() < deadline, f"nobody took r1's partitions {owned} from it"
            await asyncio.sleep(0.2)
        taken_at = datetime.now(UTC).isoformat()
        evicted_after = time.monotonic() - frozen
    finally:
        cluster.signal("r1", signal.SIGCONT)
    # Kafka expires r1 a session timeout after the last heartbeat it got, which r1 sent
    # at most a heartbeat interval before the freeze (two: a loaded machine's is late);
    # how soon after the expiry the others rejoin and claim depends on the machine.
    least = (SESSION_TIMEOUT_MS - 2 * HEARTBEAT_INTERVAL_MS) / 1000
    assert evicted_after >= least, f"taken over {evicted_after:.1f} s after the freeze"

    # The zombie notices (a failed commit, a fence, a rebalance) and carries on.
    await cluster.wait_applied(marked_topic.total)
    await cluster.finish(marked_topic, kafka)

    # Where the new owners started on each of r1's partitions: whatever r1 wrote up
    # to there was in before the takeover (r1 may have been frozen after sending a
    # COMMIT and log it only on waking); anything beyond would be a zombie's write.
    claimed_from = takeover_offsets(cluster, owned, after=frozen_at)
    late = [
        entry
        for entry in cluster.log_entries("r1")
        if entry["event"] == "batch_committed"
        and entry["timestamp"] > taken_at
        and any(
            p in claimed_from and offset > claimed_from[p]
            for p, offset in zip(entry["partitions"], entry["offsets"], strict=True)
        )
        and not cluster.reclaimed(
            "r1", set(entry["partitions"]) & set(owned), taken_at, entry["timestamp"]
        )
    ]
    assert late == []
    r1_events = [e["event"] for e in cluster.log_entries("r1") if e.get("timestamp", "") > taken_at]
    assert set(claimed_from) == set(owned), "r2 and r3 logged no claim of r1's partitions"
    print(
        f"zombie r1: frozen {evicted_after:.1f} s ({ended} PostgreSQL session(s) ended), "
        f"partitions {owned} taken over at offsets {claimed_from}; "
        f"after resuming it logged fenced x{r1_events.count('fenced')}, "
        f"partitions_revoked x{r1_events.count('partitions_revoked')}, "
        f"batch_committed x{r1_events.count('batch_committed')} (none for its old partitions "
        "unless it was assigned them again)"
    )
