"""Kafka unreachable at start: structured waiting, a bounded wait if configured, a clean stop.

No broker: the bootstrap address is a local port nobody listens on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog
from aiokafka.errors import KafkaConnectionError

from clickstream_devstack.servers.ports import LOOPBACK, free_port
from clickstream_producer import kafka_connect
from clickstream_producer.exits import EXIT_KAFKA_UNREACHABLE
from clickstream_producer.main import run
from clickstream_producer.metrics import KAFKA, ProducerMetrics
from clickstream_producer.settings import ProducerSettings
from clickstream_runtime.settings import load
from clickstream_runtime.tls import TlsFileError


def _settings(**overrides: object) -> ProducerSettings:
    values: dict[str, object] = {
        "kafka_bootstrap_servers": f"{LOOPBACK}:{free_port()}",
        "metrics_port": 0,
        "producer_rate": 10,
        "producer_seed": 1,
    }
    return load(ProducerSettings, **(values | overrides))


async def test_gives_up_after_the_startup_timeout_with_one_line_and_its_exit_code() -> None:
    settings = _settings(producer_startup_timeout_s=1.5)
    metrics = ProducerMetrics.create()
    # Awaited in this task (no wait_for): a SystemExit raised in another task
    # would end the event loop rather than reach pytest.raises.
    with structlog.testing.capture_logs() as logs, pytest.raises(SystemExit) as exited:
        async with asyncio.timeout(60):
            await run(settings, asyncio.Event(), metrics=metrics)
    assert exited.value.code == EXIT_KAFKA_UNREACHABLE
    waiting = [entry for entry in logs if entry["event"] == "kafka_waiting"]
    assert [entry["attempt"] for entry in waiting] == list(range(1, len(waiting) + 1))
    assert waiting
    assert all(
        entry["error"] and entry["servers"] == settings.kafka_bootstrap_servers for entry in waiting
    )
    (gave_up,) = [entry for entry in logs if entry["event"] == "kafka_unreachable"]
    assert "did not answer within 1.5s (PRODUCER_STARTUP_TIMEOUT_S)" in gave_up["reason"]
    assert "\n" not in gave_up["reason"]
    status = metrics.readiness.status()
    assert not status.ready
    assert KAFKA in status.failing


async def test_waits_until_stopped_by_default() -> None:
    settings = _settings()
    assert settings.producer_startup_timeout_s == 0
    metrics = ProducerMetrics.create()
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        producing = asyncio.create_task(run(settings, stop, metrics=metrics))
        while sum(entry["event"] == "kafka_waiting" for entry in logs) < 3:
            assert not producing.done(), producing
            await asyncio.sleep(0.05)
        assert metrics.readiness.status().failing[KAFKA]
        stop.set()
        await asyncio.wait_for(producing, 10)  # returns: nothing was sent, nothing is lost
    events = [entry["event"] for entry in logs]
    assert "stopped_before_kafka_answered" in events
    assert "kafka_unreachable" not in events


async def test_a_tls_file_the_broker_rejects_is_named_at_once_not_waited_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Refused:
        def __init__(self, **_options: object) -> None:
            self.stopped = False

        async def start(self) -> None:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

        async def stop(self) -> None:
            self.stopped = True

    async def named(_settings: object) -> None:
        raise TlsFileError("KAFKA_SSL_CERTFILE", tmp_path / "client.pem", "refused")

    monkeypatch.setattr(kafka_connect, "AIOKafkaProducer", Refused)
    monkeypatch.setattr(kafka_connect, "explain_kafka_tls_failure", named)
    metrics = ProducerMetrics.create()
    with structlog.testing.capture_logs() as logs, pytest.raises(TlsFileError, match="refused"):
        # Raised in this task (not inside the attempt's task, where it would end the loop).
        await kafka_connect.connect(_settings(), asyncio.Event(), metrics.readiness)
    assert not [entry for entry in logs if entry["event"] == "kafka_waiting"]


async def test_a_stop_while_a_big_population_is_built_ends_the_run_without_waiting_for_it() -> None:
    # --rate 8000 builds 144,800 users and 72,400 sessions (seconds; 2000 here,
    # to spare the machine): a SIGTERM meanwhile must wait neither for that nor
    # for Kafka.
    stop = asyncio.Event()
    stop.set()
    with structlog.testing.capture_logs() as logs:
        await run(_settings(producer_rate=2000), stop, metrics=ProducerMetrics.create())
    events = [entry["event"] for entry in logs]
    assert "stopped_before_start" in events
    assert "kafka_waiting" not in events


async def test_a_live_run_says_that_it_ignores_start() -> None:
    stop = asyncio.Event()
    stop.set()
    settings = _settings(producer_start="2026-01-01T00:00:00+00:00")
    with structlog.testing.capture_logs() as logs:
        await run(settings, stop, metrics=ProducerMetrics.create())
    (ignored,) = [entry for entry in logs if entry["event"] == "start_ignored"]
    assert "--rate 0" in ignored["reason"]
