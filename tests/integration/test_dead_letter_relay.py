"""The dead-letter relay against a real broker and PostgreSQL (issue 11, "Dead letters").

Each test writes outbox rows straight into ``dead_letters``, owns the source
partitions under epoch 1 (as a claim would leave them) and drives a real
:class:`DeadLetterRelay`; what lands in the dead-letter topic is read back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
    UnknownError,
)
from structlog.testing import capture_logs

from clickstream_aggregator.deadletters import DeadLetterRelay, RelayProducers
from clickstream_aggregator.deadletters import reconcile as reconcile_module
from clickstream_aggregator.deadletters.copies import (
    HEADER_OFFSET,
    HEADER_TRUNCATED,
    HEADER_VALUE_BYTES,
    build_copy,
)
from clickstream_aggregator.deadletters.health import CONDITION
from clickstream_aggregator.deadletters.tail import TailStopped, TailTimeout, read_tail
from clickstream_aggregator.main import run
from clickstream_aggregator.metrics import AggregatorMetrics
from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_runtime.health import Readiness
from clickstream_schema.dead_letters import RELAY_MAX_REFUSALS
from support.aggregator import settings_from_env
from support.feed import publish, read_all

EPOCH = 1


@dataclass
class Owned:
    epochs: dict[int, int] = field(default_factory=dict)


@dataclass
class World:
    kafka: EmbeddedKafka
    topics: KafkaTopics
    settings: AggregatorSettings
    pool: asyncpg.Pool
    reader: AIOKafkaConsumer
    owned: Owned
    readiness: Readiness
    stack: contextlib.AsyncExitStack

    async def add_rows(
        self, partition: int, rows: list[tuple[int, bytes | None, bytes | None]]
    ) -> None:
        """Outbox rows (source offset, key, value) as a batch transaction writes them."""
        await self.pool.executemany(
            """
            INSERT INTO dead_letters (source_topic, source_partition, source_offset, message_key,
                message_value, message_timestamp_ms, reason, error_class, error_message)
            VALUES ($1, $2, $3, $4, $5, 1764547200000, 'oversize', 'ValueError', 'too big')
            """,
            [(self.topics.events, partition, o, k, v) for o, k, v in rows],
        )

    def relay(
        self, *, producer_factory: Callable[..., AIOKafkaProducer] | None = None
    ) -> DeadLetterRelay:
        producers = (
            RelayProducers(self.settings)
            if producer_factory is None
            else RelayProducers(self.settings, factory=producer_factory)
        )
        self.stack.push_async_callback(producers.close)
        return DeadLetterRelay(
            self.settings,
            self.pool,
            producers,
            self.reader,
            self.owned,
            AggregatorMetrics.create(self.readiness),
            self.readiness,
            asyncio.Event(),
        )

    async def copies(self) -> list[tuple[int, int, dict[str, bytes], bytes | None, bytes | None]]:
        return await read_all(self.kafka.bootstrap, self.topics.dlq, self.topics.partitions)

    async def rows(self, partition: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT source_offset, relayed_at, dlq_offset, relay_attempts, relay_error "
            "FROM dead_letters WHERE source_partition = $1 ORDER BY source_offset",
            partition,
        )


@pytest.fixture
async def world(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> AsyncIterator[World]:
    settings = settings_from_env(
        service_env, aggregator_retry_initial_s=0.05, aggregator_retry_max_s=0.2
    )
    async with contextlib.AsyncExitStack() as stack:
        pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=4)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await migrate(conn)
        partitions = list(range(topics.partitions))
        await pool.execute(
            """
            INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, epoch, owner)
            SELECT $1, $2, p, 0, $4, 'test' FROM unnest($3::int[]) AS p
            """,
            topics.group,
            topics.events,
            partitions,
            EPOCH,
        )
        reader = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            isolation_level="read_committed",
        )
        await reader.start()
        stack.push_async_callback(reader.stop)
        yield World(
            kafka,
            topics,
            settings,
            pool,
            reader,
            Owned(dict.fromkeys(partitions, EPOCH)),
            Readiness(),
            stack,
        )


def _offset(headers: list[tuple[str, bytes]] | None) -> int:
    return int(dict(headers or ())[HEADER_OFFSET])


def refusing(
    refuse: Callable[[int, list[tuple[str, bytes]]], bool],
) -> Callable[..., AIOKafkaProducer]:
    """A producer that refuses (as Kafka does a record too large) the copies ``refuse`` picks."""

    class Refusing(AIOKafkaProducer):  # type: ignore[misc]
        async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
            headers = kwargs.get("headers") or []
            if refuse(_offset(headers), headers):
                raise MessageSizeTooLargeError("refused by the test")
            return await super().send(topic, *args, **kwargs)

    return Refusing


async def test_an_oversize_dead_letter_is_relayed_cut_and_the_rows_after_it_flow(
    world: World,
) -> None:
    big = b"x" * 2_000_000  # larger than the producer's max_request_size and message.max.bytes
    await world.add_rows(0, [(10, b"k10", big), (11, b"k11", b"small"), (12, None, None)])

    await world.relay().sweep(asyncio.Event())

    rows = await world.rows(0)
    assert [r["relayed_at"] is not None for r in rows] == [True, True, True]
    copies = {_offset(list(h.items())): (h, k, v) for _p, _o, h, k, v in await world.copies()}
    assert sorted(copies) == [10, 11, 12]
    headers, key, value = copies[10]
    assert key == b"k10"
    assert value is not None
    assert 0 < len(value) < world.settings.aggregator_dlq_max_message_bytes
    assert big.startswith(value)
    assert headers[HEADER_TRUNCATED] == b"value"
    assert headers[HEADER_VALUE_BYTES] == b"2000000"
    assert copies[11][1:] == (b"k11", b"small")
    assert HEADER_TRUNCATED not in copies[11][0]
    # The original bytes stay in the table.
    stored = await world.pool.fetchval(
        "SELECT message_value FROM dead_letters WHERE source_offset = 10"
    )
    assert stored == big

    # A restarted relay (new producers, same table and topic) sends nothing again.
    await world.add_rows(0, [(13, b"k13", b"later")])
    await world.relay().sweep(asyncio.Event())
    offsets = sorted(_offset(list(h.items())) for _p, _o, h, _k, _v in await world.copies())
    assert offsets == [10, 11, 12, 13]


async def test_a_row_kafka_refuses_is_set_aside_and_does_not_block_its_partition(
    world: World,
) -> None:
    await world.add_rows(
        1, [(1, b"a", b"always refused"), (2, b"b", b"refused whole"), (3, b"c", b"ok")]
    )

    def refuse(offset: int, headers: list[tuple[str, bytes]]) -> bool:
        cut = any(name == HEADER_TRUNCATED for name, _ in headers)
        return offset == 1 or (offset == 2 and not cut)

    await world.relay(producer_factory=refusing(refuse)).sweep(asyncio.Event())

    rows = {r["source_offset"]: r for r in await world.rows(1)}
    assert rows[1]["relayed_at"] is None
    assert rows[1]["relay_attempts"] == RELAY_MAX_REFUSALS
    assert "refused by the test" in rows[1]["relay_error"]
    assert rows[2]["relayed_at"] is not None
    assert rows[2]["relay_attempts"] == 1
    assert rows[3]["relayed_at"] is not None
    assert rows[3]["relay_attempts"] == 0
    # Once each among the committed copies (with transactions, the two rounds Kafka
    # refused part of were aborted as a whole: their copies are not committed).
    committed = await world.copies()
    assert sorted(_offset(list(h.items())) for _p, _o, h, _k, _v in committed) == [2, 3]
    copies = {_offset(list(h.items())): (h, k, v) for _p, _o, h, k, v in committed}
    assert copies[2][1:] == (None, b"")  # headers only
    assert copies[2][0][HEADER_TRUNCATED] == b"key,value"

    # Set aside across restarts, and visible: pending, refused, readiness red.
    await world.add_rows(1, [(4, b"d", b"after a restart")])
    relay = world.relay(producer_factory=refusing(refuse))
    await relay.sweep(asyncio.Event())
    assert sorted(_offset(list(h.items())) for _p, _o, h, _k, _v in await world.copies()) == [
        2,
        3,
        4,
    ]
    stats = await relay.watch.check()
    assert stats is not None
    assert (stats.rows, stats.refused) == (1, 1)
    await world.pool.execute("UPDATE dead_letters SET created_at = now() - interval '1 hour'")
    await relay.watch.check()
    status = world.readiness.status()
    assert not status.ready
    assert "1 refused" in status.failing[CONDITION]


async def test_retriable_kafka_errors_are_retried_not_fatal(world: World) -> None:
    await world.add_rows(2, [(5, b"k", b"v"), (6, b"k", b"w")])
    failures = iter([NotLeaderForPartitionError(), NotLeaderForPartitionError()])

    class Flaky(AIOKafkaProducer):  # type: ignore[misc]
        async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
            error = next(failures, None)
            if error is not None:
                raise error
            return await super().send(topic, *args, **kwargs)

    relay = world.relay(producer_factory=Flaky)
    world.owned.epochs = {2: EPOCH}
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _until(lambda: _relayed(world, 2), "rows relayed after retries", task)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert sorted(_offset(list(h.items())) for _p, _o, h, _k, _v in await world.copies()) == [5, 6]


async def test_an_outage_of_one_partition_does_not_hold_the_others(world: World) -> None:
    # Source partition 0 goes to dead-letter partition 0, whose leader is away
    # until ``heal``; partition 1's rows must flow meanwhile, then partition 0's.
    await world.add_rows(0, [(1, b"k", b"a")])
    await world.add_rows(1, [(2, b"k", b"b")])
    heal = asyncio.Event()

    class LeaderAway(AIOKafkaProducer):  # type: ignore[misc]
        async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("partition") == 0 and not heal.is_set():
                raise NotLeaderForPartitionError()
            return await super().send(topic, *args, **kwargs)

    relay = world.relay(producer_factory=LeaderAway)
    world.owned.epochs = {0: EPOCH, 1: EPOCH}
    stop = asyncio.Event()
    with capture_logs() as logged:
        task = asyncio.create_task(relay.run(stop))
        relay._wake.set()
        try:
            await _until(lambda: _relayed(world, 1), "partition 1 relayed during the outage", task)
            assert not await _relayed(world, 0)
            heal.set()
            await _until(lambda: _relayed(world, 0), "partition 0 relayed once healed", task)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=10)
    deferred = [e for e in logged if e["event"] == "dead_letter_relay_deferred"]
    assert deferred
    assert {e["partition"] for e in deferred} == {0}
    retries = [e for e in logged if e["event"] == "dead_letter_relay_retry"]
    assert retries
    assert {e["cause"] for e in retries} == {"kafka_unavailable"}
    assert world.readiness.status().retry_since is None  # the batch loop's streak, not the relay's


async def test_a_relay_failure_stops_the_service_with_an_event(world: World) -> None:
    await world.add_rows(3, [(7, b"k", b"v")])

    class Forbidden(AIOKafkaProducer):  # type: ignore[misc]
        async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
            raise TopicAuthorizationFailedError()

    relay = world.relay(producer_factory=Forbidden)
    world.owned.epochs = {3: EPOCH}
    stop = asyncio.Event()
    with capture_logs() as logged:
        task = asyncio.create_task(relay.run(stop))
        relay._wake.set()
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(task, timeout=20)
    assert stop.is_set()  # the service stops instead of running on without a relay
    assert any(e["event"] == "dead_letter_relay_failed" for e in logged)
    assert not world.readiness.status().conditions[CONDITION]


async def test_the_relay_does_not_hold_the_offset_row_lock_during_kafka_io(world: World) -> None:
    await world.add_rows(4, [(8, b"k", b"v")])
    sending = asyncio.Event()
    release = asyncio.Event()

    class Slow(AIOKafkaProducer):  # type: ignore[misc]
        async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
            sending.set()
            await release.wait()
            return await super().send(topic, *args, **kwargs)

    relay = world.relay(producer_factory=Slow)
    world.owned.epochs = {4: EPOCH}
    sweep = asyncio.create_task(relay.sweep(asyncio.Event()))
    try:
        await asyncio.wait_for(sending.wait(), timeout=20)
        # A batch of that partition locks its offset row: it must not wait for Kafka.
        async with world.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '500ms'")
            locked = await conn.fetchval(
                "SELECT partition FROM consumer_offsets WHERE topic = $1 AND partition = 4 "
                "FOR UPDATE",
                world.topics.events,
            )
        assert locked == 4
    finally:
        release.set()
        await asyncio.wait_for(sweep, timeout=20)
    assert (await world.rows(4))[0]["relayed_at"] is not None


async def test_copies_sent_but_not_marked_are_found_not_sent_again(world: World) -> None:
    rows = [(20, b"k", b"one"), (21, b"k", b"two"), (22, b"k", b"three")]
    await world.add_rows(5, rows)
    # A relay that crashed between send and mark: the first two copies are in the topic.
    stored = await world.pool.fetch(
        "SELECT * FROM dead_letters WHERE source_offset IN (20, 21) ORDER BY source_offset"
    )
    producer = AIOKafkaProducer(bootstrap_servers=world.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for row in stored:
            copy = build_copy(world.topics.events, 5, row, max_bytes=1_000_000)
            await producer.send_and_wait(
                world.topics.dlq, copy.value, key=copy.key, partition=5, headers=copy.headers
            )
    finally:
        await producer.stop()

    await world.relay().sweep(asyncio.Event())

    copies = await world.copies()
    assert sorted(_offset(list(h.items())) for _p, _o, h, _k, _v in copies) == [20, 21, 22]
    marked = {r["source_offset"]: r["dlq_offset"] for r in await world.rows(5)}
    assert marked == {_offset(list(h.items())): o for _p, o, h, _k, _v in copies}


async def test_reading_a_tail_without_leader_is_bounded_and_stops_at_once(world: World) -> None:
    missing = TopicPartition(world.topics.dlq, 99)  # no such partition: no leader, ever
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TailTimeout):
        await read_tail(
            world.reader, missing, 0, world.topics.events, 0, stop=asyncio.Event(), deadline_s=1.0
        )
    assert loop.time() - began < 5

    stop = asyncio.Event()
    loop.call_later(0.3, stop.set)
    began = loop.time()
    with pytest.raises(TailStopped):
        await read_tail(world.reader, missing, 0, world.topics.events, 0, stop=stop, deadline_s=60)
    assert loop.time() - began < 3


async def test_pending_rows_show_in_gauges_and_readiness(world: World) -> None:
    await world.add_rows(0, [(30, b"k", b"v")])
    await world.pool.execute("UPDATE dead_letters SET created_at = now() - interval '10 minutes'")
    relay = world.relay()
    metrics = relay._metrics

    await relay.watch.check()
    assert metrics.dead_letters_pending._value.get() == 1
    assert metrics.dead_letters_oldest_pending_seconds._value.get() >= 600
    assert not world.readiness.status().conditions[CONDITION]

    await relay.sweep(asyncio.Event())
    await relay.watch.check()
    assert metrics.dead_letters_pending._value.get() == 0
    assert metrics.dead_letters_oldest_pending_seconds._value.get() == 0
    assert world.readiness.status().conditions[CONDITION]


@pytest.mark.tansu_only("its subject is a broker without transactions")
async def test_transactions_auto_falls_back_on_a_broker_without_them(world: World) -> None:
    auto = RelayProducers(world.settings.model_copy(update={"aggregator_dlq_transactions": "auto"}))
    on = RelayProducers(world.settings.model_copy(update={"aggregator_dlq_transactions": "on"}))
    try:
        with capture_logs() as logged:
            _producer, transactional = await auto.get(0, EPOCH)
        assert not transactional
        assert auto.mode == "off"
        assert [e["event"] for e in logged] == ["dead_letter_fencing_unavailable"]
        # "on" means on: the relay does not write unfenced copies (Tansu has no transactions).
        with pytest.raises(UnknownError):
            await on.get(0, EPOCH)
    finally:
        await auto.close()
        await on.close()


async def _relayed(world: World, partition: int) -> bool:
    rows = await world.rows(partition)
    return bool(rows) and all(r["relayed_at"] is not None for r in rows)


async def _until(
    condition: Callable[[], Any], what: str, task: asyncio.Task[None], timeout: float = 30
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if task.done():
            task.result()
            raise AssertionError(f"relay ended before: {what}")
        assert loop.time() < deadline, f"not in {timeout}s: {what}"
        await asyncio.sleep(0.1)


async def test_a_long_dead_letter_partition_is_reconciled_over_bounded_rounds(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another source partition's copies fill dead-letter partition 0 (12 = 0 mod 6);
    # the copy of ours that was sent but not marked comes after them.
    filler = [
        (TopicPartition(world.topics.dlq, 0), [("__connect.errors.partition", b"12")])
    ] * 20_000
    await world.add_rows(0, [(40, b"k", b"v")])
    row = await world.pool.fetchrow("SELECT * FROM dead_letters WHERE source_offset = 40")
    producer = AIOKafkaProducer(bootstrap_servers=world.kafka.bootstrap, linger_ms=20)
    await producer.start()
    try:
        pending = [
            await producer.send(tp.topic, b"f" * 1000, partition=0, headers=headers)
            for tp, headers in filler
        ]
        copy = build_copy(world.topics.events, 0, row, max_bytes=1_000_000)
        pending.append(
            await producer.send(
                world.topics.dlq, copy.value, key=copy.key, partition=0, headers=copy.headers
            )
        )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    # A budget in records, not seconds: how much 0.1 s reads depends on the machine.
    monkeypatch.setattr(reconcile_module, "_RECONCILE_RECORDS", 3_000)
    world.owned.epochs = {0: EPOCH}
    relay = world.relay()
    stop = asyncio.Event()

    with capture_logs() as logged:
        task = asyncio.create_task(relay.run(stop))
        relay._wake.set()
        try:
            await _until(lambda: _relayed(world, 0), "the copy found", task, timeout=90)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=10)

    # Cut at the budget several times, each round reading on from where the last stopped.
    progress = [e["position"] for e in logged if e["event"] == "dead_letter_reconcile_progress"]
    assert progress == [3_000 * (i + 1) for i in range(len(filler) // 3_000)]
    rows = await world.rows(0)
    assert rows[0]["dlq_offset"] == len(filler)  # found after the filler, not sent again
    ours = [h for _p, _o, h, _k, _v in await world.copies() if h.get(HEADER_OFFSET) == b"40"]
    assert len(ours) == 1


async def test_stop_ends_a_relay_round_stuck_in_kafka(world: World) -> None:
    await world.add_rows(1, [(50, b"k", b"v")])
    sending = asyncio.Event()

    class Stuck(AIOKafkaProducer):  # type: ignore[misc]
        async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
            sending.set()
            await asyncio.Event().wait()  # a broker that never answers

    relay = world.relay(producer_factory=Stuck)
    world.owned.epochs = {1: EPOCH}
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    relay._wake.set()
    await asyncio.wait_for(sending.wait(), timeout=20)
    loop = asyncio.get_running_loop()
    began = loop.time()
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert loop.time() - began < 3
    assert (await world.rows(1))[0]["relayed_at"] is None  # rolled back, relayed next time


async def test_with_transactions_a_round_commits_or_aborts_as_a_whole(world: World) -> None:
    # Tansu has no transactions: this producer writes at once and records what the
    # relay asked of the transaction, which is what is checked here.
    calls: list[str] = []

    class Recording(AIOKafkaProducer):  # type: ignore[misc]
        def __init__(self, **options: Any) -> None:
            calls.append(f"new {options.pop('transactional_id', None)}")
            super().__init__(**options)

        async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
            if _offset(kwargs.get("headers")) == 60 and not any(
                name == HEADER_TRUNCATED for name, _ in kwargs["headers"]
            ):
                raise MessageSizeTooLargeError("refused by the test")
            calls.append("send")
            return await super().send(topic, *args, **kwargs)

        async def begin_transaction(self) -> None:
            calls.append("begin")

        async def commit_transaction(self) -> None:
            calls.append("commit")

        async def abort_transaction(self) -> None:
            calls.append("abort")

    on = world.settings.model_copy(update={"aggregator_dlq_transactions": "on"})
    world.settings = on
    relay = world.relay(producer_factory=Recording)
    await world.add_rows(2, [(60, b"k", b"refused whole"), (61, b"k", b"fine")])

    await relay._round(2, EPOCH, asyncio.Event())

    assert calls == [
        f"new {world.topics.group}.dlq.{world.topics.events}.2",
        "begin",
        "send",
        "abort",
    ]
    rows = {r["source_offset"]: r for r in await world.rows(2)}
    assert rows[60]["relay_attempts"] == 1
    assert rows[61]["relayed_at"] is None  # aborted with its round, sent again
    calls.clear()

    await relay._round(2, EPOCH, asyncio.Event())

    assert calls[0] == "begin"
    assert calls[-1] == "commit"
    assert "abort" not in calls
    assert all(r["relayed_at"] is not None for r in await world.rows(2))


@pytest.mark.tansu_only(
    "it makes the relay fail by demanding transactions of a broker without them"
)
async def test_the_service_stops_with_an_event_when_its_relay_fails(
    kafka: EmbeddedKafka, topics: KafkaTopics, service_env: dict[str, str]
) -> None:
    # "on" demands transactions, which the test broker does not have: the relay
    # cannot write a single copy, and the service must not run on without it.
    await publish(kafka.bootstrap, topics.events, [(b"k", b"{not json")])
    settings = settings_from_env(service_env, aggregator_dlq_transactions="on")
    with capture_logs() as logged, pytest.raises(UnknownError):
        await asyncio.wait_for(run(settings, asyncio.Event()), timeout=60)
    failed = [e for e in logged if e["event"] == "dead_letter_relay_failed"]
    assert len(failed) == 1
    assert "UnknownError" in failed[0]["error"]
