"""Claims on assignment are bounded: an outage during a rebalance never holds the group."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.ownership import Ownership
from clickstream_aggregator.policy import Retrying
from clickstream_aggregator.positions import Positions
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_devstack.environment import Database
from clickstream_runtime.health import Readiness

pytestmark = pytest.mark.integration

TOPIC = "claims-topic"


@dataclass
class FlakyConsumer:
    """A consumer whose broker does not answer ``beginning_offsets`` while ``down``."""

    down: bool = True
    slow_s: float = 0.0
    paused: set[int] = field(default_factory=set)
    seeks: dict[int, int] = field(default_factory=dict)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.down:
            raise KafkaConnectionError("Unable to connect")
        await asyncio.sleep(self.slow_s)
        return dict.fromkeys(tps, 0)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, p) for p in range(3)}

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= {tp.partition for tp in tps}

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= {tp.partition for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp.partition] = offset


def _ownership(
    settings: AggregatorSettings,
    consumer: FlakyConsumer,
    pool: asyncpg.Pool,
    readiness: Readiness,
) -> Ownership:
    metrics = AggregatorMetrics.create(readiness)
    return Ownership(
        settings,
        consumer,  # type: ignore[arg-type]
        pool,
        Positions(consumer, TOPIC, 30.0),  # type: ignore[arg-type]
        Retrying("claim", "postgres", settings, metrics, readiness),
        asyncio.Lock(),
        asyncio.Event(),
    )


async def test_a_claim_that_cannot_finish_in_the_rebalance_is_finished_by_the_batch_loop(
    database: Database,
) -> None:
    settings = AggregatorSettings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_topic=TOPIC,
        kafka_session_timeout_ms=3000,
        aggregator_retry_initial_s=0.05,
        aggregator_retry_max_s=0.1,
    )
    readiness = Readiness(("postgres", "kafka"))
    consumer = FlakyConsumer()
    pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        ownership = _ownership(settings, consumer, pool, readiness)
        started = time.monotonic()
        await ownership.on_partitions_assigned([TopicPartition(TOPIC, p) for p in (0, 1)])
        # Back well inside the session timeout: the group is not held up.
        assert time.monotonic() - started < settings.kafka_session_timeout_ms / 1000
        assert ownership.pending == {0, 1}
        assert consumer.paused == {0, 1}
        assert ownership.epochs == {}
        assert readiness.status().conditions["kafka"] is False

        consumer.down = False
        await ownership.claim_pending(5.0)
    finally:
        await pool.close()
    assert ownership.pending == set()
    assert consumer.paused == set()
    assert ownership.epochs == {0: 1, 1: 1}
    assert consumer.seeks == {0: 0, 1: 0}


async def test_the_listener_and_the_batch_loop_never_claim_the_same_partitions_twice(
    database: Database,
) -> None:
    settings = AggregatorSettings(_env_file=None, kafka_topic=TOPIC)  # type: ignore[call-arg]
    readiness = Readiness(("postgres", "kafka"))
    consumer = FlakyConsumer(down=False)
    pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=3)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        ownership = _ownership(settings, consumer, pool, readiness)
        # The batch loop asks while the listener's claim is still in PostgreSQL.
        await asyncio.gather(
            ownership.on_partitions_assigned([TopicPartition(TOPIC, p) for p in (0, 1, 2)]),
            ownership.claim_pending(5.0),
            ownership.claim_pending(5.0),
        )
        epochs = await pool.fetch("SELECT partition, epoch FROM consumer_offsets ORDER BY 1")
    finally:
        await pool.close()
    # One claim each: a second one would fence this replica's own batches.
    assert [(r["partition"], r["epoch"]) for r in epochs] == [(0, 1), (1, 1), (2, 1)]
    assert ownership.epochs == {0: 1, 1: 1, 2: 1}


async def test_a_revocation_waits_for_the_claim_under_way_and_then_lets_go(
    database: Database,
) -> None:
    settings = AggregatorSettings(_env_file=None, kafka_topic=TOPIC)  # type: ignore[call-arg]
    readiness = Readiness(("postgres", "kafka"))
    consumer = FlakyConsumer(down=False, slow_s=0.3)
    pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=3)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        ownership = _ownership(settings, consumer, pool, readiness)
        ownership.pending = {0, 1}  # left pending by a rebalance; the batch loop claims them
        claiming = asyncio.create_task(ownership.claim_pending(5.0))
        await asyncio.sleep(0)  # the claim is under way (waiting on Kafka)
        await ownership.on_partitions_revoked([TopicPartition(TOPIC, p) for p in (0, 1)])
        assert claiming.done()  # the revocation waited for it
    finally:
        await pool.close()
    # Without the wait, the claim would land after the revocation and this replica
    # would believe it still owns the partitions another replica is about to claim.
    assert ownership.epochs == {}
    assert ownership.pending == set()
