"""A broker that dies under a running aggregator: readiness tells, SIGTERM still ends it.

Its own broker (the session's is shared), the real service process, JSON logs.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import orjson
import pytest

from clickstream_devstack.environment import Database, KafkaTopics, create_topics, service_env
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.ports import LOOPBACK, free_port
from clickstream_devstack.services import ServiceGroup
from support.aggregator import applied_offsets
from support.feed import as_messages, generate, publish
from support.readiness import readyz, until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.tansu_only(
        "kills a broker of its own; Apache Kafka brokers: tests/real/test_kafka_cluster.py"
    ),
]

#: SIGTERM must end a service within this, whatever the servers do (README).
STOP_BOUND_S = 10.0


async def test_readiness_turns_red_when_the_broker_dies_and_sigterm_still_stops_it(
    own_kafka: EmbeddedKafka, tmp_path: Path, database: Database
) -> None:
    topics = KafkaTopics.unique(partitions=3)
    create_topics(own_kafka, topics)
    port = free_port()
    env = service_env(
        own_kafka,
        topics,
        database,
        METRICS_PORT=port,
        METRICS_HOST=LOOPBACK,
        KAFKA_SESSION_TIMEOUT_MS=6000,
        KAFKA_HEARTBEAT_INTERVAL_MS=1000,
    )
    messages = as_messages(generate(500, seed=61))
    await publish(own_kafka.bootstrap, topics.events, messages)
    with ServiceGroup(tmp_path / "services") as services:
        aggregator = services.launch("clickstream-aggregator", env=env)

        async def applied() -> bool:
            services.check_running()
            return await applied_offsets(database.dsn, topics.group, topics.events) >= len(messages)

        async def ready() -> bool:
            try:
                return (await readyz(port))[0] == 200
            except OSError:
                return False

        await until("all applied", applied, 120)
        await until("ready", ready, 60)

        own_kafka.kill()

        async def kafka_down() -> bool:
            status, body = await readyz(port)
            return status == 503 and "kafka" in body["failing"]  # type: ignore[operator]

        # The probe asks every 2 s with a 2 s timeout: a few seconds, with or without traffic.
        await until("readiness names kafka", kafka_down, 15)

        started = time.monotonic()
        aggregator.process.send_signal(signal.SIGTERM)
        aggregator.stopping = True
        code = await asyncio.to_thread(aggregator.process.wait, STOP_BOUND_S + 5)
        took = time.monotonic() - started

    assert took < STOP_BOUND_S, f"SIGTERM took {took:.1f}s with the broker dead"
    assert code in (0, 3), code
    lines = [line for line in aggregator.log_path.read_text().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), [
        line for line in lines if not line.startswith("{")
    ][:5]
    events = [orjson.loads(line)["event"] for line in lines]
    assert "dependency_down" in events
