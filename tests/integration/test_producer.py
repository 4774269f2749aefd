"""The producer against a real broker: what it sends is what the aggregator can read."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from aiokafka import AIOKafkaConsumer

from clickstream_devstack.environment import Database, KafkaTopics, create_topics, service_env
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.ports import LOOPBACK, free_port
from clickstream_devstack.services import Service, ServiceGroup
from clickstream_producer.exits import EXIT_KAFKA_UNREACHABLE, EXIT_UNACKNOWLEDGED
from clickstream_producer.generator import EventGenerator
from clickstream_producer.main import run
from clickstream_producer.settings import ProducerSettings
from clickstream_producer.wire import encode_record
from clickstream_runtime.settings import load
from clickstream_schema import decode
from support.readiness import readyz, until

COUNT = 5000
Message = tuple[bytes, bytes]
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    return [(key, value) for _, key, value in await _consume_partitions(bootstrap, topic, count)]


async def _consume_partitions(
    bootstrap: str, topic: str, count: int
) -> list[tuple[int, bytes, bytes]]:
    """``(partition, key, value)`` of ``count`` messages, in offset order per partition."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    messages: list[tuple[int, bytes, bytes]] = []
    try:
        while len(messages) < count:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                messages.extend((r.partition, r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return messages


def _settings(kafka: EmbeddedKafka, topic: KafkaTopics, workers: int) -> ProducerSettings:
    return load(
        ProducerSettings,
        kafka_bootstrap_servers=kafka.bootstrap,
        metrics_port=0,  # 9101 may be taken by another process on this machine
        kafka_topic=topic.events,
        producer_events=COUNT,
        producer_rate=0,
        producer_seed=3,
        producer_users=300,
        producer_concurrent_sessions=100,
        producer_start=START,
        producer_batch_bytes=64 * 1024,
        producer_generator_workers=workers,
    )


async def _produce(kafka: EmbeddedKafka, topic: KafkaTopics, workers: int) -> list[Message]:
    await run(_settings(kafka, topic, workers), asyncio.Event())
    messages = await asyncio.wait_for(_consume(kafka.bootstrap, topic.events, COUNT), 120)
    assert len(messages) == COUNT
    events = [decode(value) for _, value in messages]
    assert all(
        key == event.session_id.encode() for (key, _), event in zip(messages, events, strict=True)
    )
    return messages


@pytest.mark.parametrize("workers", [0, 1])
async def test_produced_events_are_the_seeded_sequence_keyed_by_session(
    kafka: EmbeddedKafka, topic: KafkaTopics, workers: int
) -> None:
    messages = await _produce(kafka, topic, workers)
    # Exactly the seeded sequence, byte for byte (order differs across partitions).
    expected = EventGenerator(seed=3, users=300, concurrent_sessions=100, start=START)
    assert Counter(messages) == Counter(encode_record(r) for r in expected.next_records(COUNT))


@pytest.mark.one_broker("a long run, once: on Apache Kafka where Java is present")
async def test_several_generators_give_the_same_events_for_the_same_seed(
    kafka: EmbeddedKafka, make_topics: Callable[[], KafkaTopics]
) -> None:
    first, second = make_topics(), make_topics()
    runs = [await _produce(kafka, topics, 3) for topics in (first, second)]
    assert Counter(runs[0]) == Counter(runs[1])
    # Each generator has its own users; together they cover the configured count.
    users = {decode(value).user_id for _, value in runs[0]}
    assert 200 < len(users) <= 300
    # The generators' windows are merged by event time: each partition is in time order.
    by_partition: dict[int, list[datetime]] = {}
    for partition, _, value in await _consume_partitions(kafka.bootstrap, first.events, COUNT):
        by_partition.setdefault(partition, []).append(decode(value).timestamp)
    assert all(times == sorted(times) for times in by_partition.values())


async def test_stop_flushes_and_acknowledges_everything_sent(
    kafka: EmbeddedKafka, topic: KafkaTopics
) -> None:
    settings = load(
        ProducerSettings,
        kafka_bootstrap_servers=kafka.bootstrap,
        metrics_port=0,  # 9101 may be taken by another process on this machine
        kafka_topic=topic.events,
        producer_events=0,
        producer_rate=0,
        producer_seed=4,
        producer_users=300,
    )
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        producing = asyncio.create_task(run(settings, stop))
        # Some traffic arrived: now ask the endless producer to stop, as SIGTERM would.
        await asyncio.wait_for(_consume(kafka.bootstrap, topic.events, 2000), 120)
        stop.set()
        await asyncio.wait_for(producing, 120)
    finished = next(entry for entry in logs if entry["event"] == "finished")
    assert finished["events"] == finished["acked"] >= 2000
    everything = await asyncio.wait_for(
        _consume(kafka.bootstrap, topic.events, finished["events"]), 120
    )
    assert len(everything) == finished["events"]


async def test_a_live_run_with_default_sizing_has_the_rate_in_its_event_times(
    kafka: EmbeddedKafka, topic: KafkaTopics
) -> None:
    # --rate 2000 --events 6000 with everything else default: the events' own
    # times (wall time when released, never earlier) span about 3 s from the
    # first one. Counted on event times, so a slow machine cannot fail it.
    settings = load(
        ProducerSettings,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_topic=topic.events,
        metrics_port=0,
        producer_rate=2000,
        producer_events=6000,
        producer_seed=12,
    )
    await run(settings, asyncio.Event())
    messages = await asyncio.wait_for(_consume(kafka.bootstrap, topic.events, 6000), 120)
    times = sorted(decode(value).timestamp.timestamp() for _, value in messages)
    per_second = Counter(int(t - times[0]) for t in times)
    assert len(times) == 6000
    assert abs(6000 / (times[-1] - times[0]) / 2000 - 1) <= 0.1
    # From the first second on, not after a ramp-up.
    assert per_second[0] >= 0.85 * 2000, per_second


# --- Outages: the real process, its own broker (the session's is shared), JSON logs ---------

#: SIGTERM must end the producer within this, whatever the broker does (README).
STOP_BOUND_S = 10.0
NO_DATABASE = Database(name="unused", dsn="", env={})


def _ready_is(port: int, ready: bool, services: ServiceGroup) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        services.check_running()
        try:
            status, body = await readyz(port)
        except OSError:
            return False
        if ready:
            return status == 200
        return status == 503 and "kafka" in body["failing"]

    return check


def _log(service: Service) -> list[dict[str, Any]]:
    lines = [line for line in service.log_path.read_text().splitlines() if line.strip()]
    not_json = [line for line in lines if not line.startswith("{")]
    assert not not_json, not_json[:5]
    return [orjson.loads(line) for line in lines]


async def _sigterm(service: Service) -> tuple[int, float]:
    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    service.stopping = True
    code = await asyncio.to_thread(service.process.wait, STOP_BOUND_S + 5)
    return code, time.monotonic() - started


@pytest.mark.tansu_only(
    "kills and restarts a broker of its own on its port, which Tansu allows at once"
)
async def test_readiness_follows_the_broker_without_traffic(
    own_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    topics = KafkaTopics.unique(partitions=3)
    create_topics(own_kafka, topics)
    port = free_port()
    # One event every 100 s: readiness cannot come from deliveries.
    env = service_env(
        own_kafka, topics, NO_DATABASE, METRICS_PORT=port, METRICS_HOST=LOOPBACK,
        PRODUCER_RATE="0.01", PRODUCER_SEED=5,
    )  # fmt: skip
    with ServiceGroup(tmp_path / "services") as services:
        producer = services.launch("clickstream-producer", env=env)
        await until("ready", _ready_is(port, True, services), 60)
        own_kafka.kill()
        # The probe asks every 2 s with a 2 s timeout.
        await until("readiness names kafka", _ready_is(port, False, services), 15)
        # The embedded broker keeps no data across a restart: the topic comes back too.
        restarted = EmbeddedKafka(tmp_path / "kafka-again", port=own_kafka.port).start()
        try:
            create_topics(restarted, topics)
            await until("ready again", _ready_is(port, True, services), 30)
            code, took = await _sigterm(producer)
        finally:
            restarted.stop()
    assert took < STOP_BOUND_S
    assert code == 0, code
    events = [entry["event"] for entry in _log(producer)]
    assert "dependency_down" in events
    assert "dependency_up" in events


@pytest.mark.tansu_only(
    "kills a broker of its own; Apache Kafka brokers: tests/real/test_kafka_cluster.py"
)
async def test_sigterm_with_the_broker_dead_ends_in_time_and_says_what_was_not_acknowledged(
    own_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    topics = KafkaTopics.unique(partitions=3)
    create_topics(own_kafka, topics)
    port = free_port()
    env = service_env(
        own_kafka, topics, NO_DATABASE, METRICS_PORT=port, METRICS_HOST=LOOPBACK,
        PRODUCER_RATE=2000, PRODUCER_SEED=6,
    )  # fmt: skip
    with ServiceGroup(tmp_path / "services") as services:
        producer = services.launch("clickstream-producer", env=env)

        async def acknowledged() -> bool:
            services.check_running()
            return any(
                entry["event"] == "progress" and entry["acked"] > 0 for entry in _log(producer)
            )

        await until("events acknowledged", acknowledged, 60)
        own_kafka.kill()
        await until("readiness names kafka", _ready_is(port, False, services), 15)
        code, took = await _sigterm(producer)
    assert took < STOP_BOUND_S, f"SIGTERM took {took:.1f}s with the broker dead"
    log = _log(producer)
    assert not any("Traceback" in str(entry) for entry in log)
    unacknowledged = [entry for entry in log if entry["event"] == "events_not_acknowledged"]
    if code == EXIT_UNACKNOWLEDGED:
        (line,) = unacknowledged
        assert line["events"] > 0
        assert line["events"] == line["sent"] - line["acked"]
    else:
        # Everything sent had been acknowledged before the broker died.
        assert code == 0, code
        assert not unacknowledged


async def test_kafka_unreachable_at_start_is_waited_for_then_one_line_and_exit_4(
    tmp_path: Path,
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KAFKA_", "PRODUCER_", "POSTGRES_", "METRICS_"))
    }
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=f"{LOOPBACK}:{free_port()}",
        PRODUCER_STARTUP_TIMEOUT_S="3",
        METRICS_PORT="0",
        LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    with ServiceGroup(tmp_path / "services") as services:
        producer = services.launch("clickstream-producer", env=env, finite=True)
        code = await asyncio.to_thread(producer.process.wait, 60)
    assert code == EXIT_KAFKA_UNREACHABLE
    log = _log(producer)
    waiting = [entry for entry in log if entry["event"] == "kafka_waiting"]
    assert waiting
    assert all("attempt" in entry and entry["error"] for entry in waiting)
    (gave_up,) = [entry for entry in log if entry["event"] == "kafka_unreachable"]
    assert "PRODUCER_STARTUP_TIMEOUT_S" in gave_up["reason"]
    # After it, at most the summaries of collapsed library warnings.
    after = log[log.index(gave_up) + 1 :]
    assert all(entry.get("repeated") for entry in after), after
    assert not any("Traceback" in str(entry) for entry in log)
