"""The Kafka and PostgreSQL probes against real servers: down within seconds, up again after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from clickstream_devstack.environment import KafkaTopics, create_topics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.ports import free_port
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_runtime.health import Readiness
from clickstream_runtime.probes import (
    kafka_probe,
    kafka_probe_client,
    keep_probing,
    postgres_probe,
)


async def eventually(what: str, condition: Callable[[], bool], within_s: float = 15.0) -> float:
    """Poll until true; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within_s:
            raise AssertionError(f"{what}: not within {within_s}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_kafka_probe_follows_a_broker_killed_and_restarted(tmp_path: Path) -> None:
    broker = EmbeddedKafka(tmp_path / "first").start()
    port = broker.port
    readiness, stop = Readiness(["kafka"]), asyncio.Event()
    try:
        async with kafka_probe_client(**broker.client_options()) as client:
            task = asyncio.create_task(
                keep_probing("kafka", kafka_probe(client), readiness, stop, interval_s=0.5)
            )
            await eventually("up", lambda: readiness.status().conditions["kafka"])

            broker.kill()
            took = await eventually("down", lambda: not readiness.status().conditions["kafka"])
            assert took < 5.0  # interval + timeout, with room for a slow machine

            broker = EmbeddedKafka(tmp_path / "second", port=port).start()
            await eventually("up again", lambda: readiness.status().conditions["kafka"])
            stop.set()
            async with asyncio.timeout(5):
                await task
    finally:
        broker.stop()


async def test_kafka_probe_reports_a_missing_topic(kafka: EmbeddedKafka) -> None:
    topic = KafkaTopics.unique()
    create_topics(kafka, topic)
    async with kafka_probe_client(**kafka.client_options()) as client:
        await kafka_probe(client, topic.events)()
        with pytest.raises(Exception, match="does not exist"):
            await kafka_probe(client, topic.events + "-gone")()


async def test_kafka_probe_client_that_never_reached_a_broker_fails_fast() -> None:
    options = {"bootstrap_servers": [f"127.0.0.1:{free_port()}"], "client_id": "probe-test"}
    async with kafka_probe_client(**options) as client:
        with pytest.raises(Exception, match="Unable to bootstrap"):
            async with asyncio.timeout(5):
                await kafka_probe(client)()


async def test_postgres_probe_up_and_unreachable(postgres: EmbeddedPostgres) -> None:
    pool = await asyncpg.create_pool(postgres.dsn(), min_size=0, max_size=1)
    try:
        await postgres_probe(pool)()
    finally:
        await pool.close()

    dead = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/x", min_size=0, max_size=1
    )
    readiness, stop = Readiness(["postgres"]), asyncio.Event()
    try:
        task = asyncio.create_task(
            keep_probing("postgres", postgres_probe(dead), readiness, stop, interval_s=0.2)
        )
        await eventually("reason", lambda: "postgres" in readiness.status().failing)
        await eventually(
            "a real reason",
            lambda: readiness.status().failing["postgres"] != "not reported yet",
        )
        assert "refused" in readiness.status().failing["postgres"].lower()
        stop.set()
        async with asyncio.timeout(5):
            await task
    finally:
        await dead.close()
