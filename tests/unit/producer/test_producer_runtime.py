"""Producer settings, clock start, progress throttling and batching, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from aiokafka.partitioner import DefaultPartitioner

from clickstream_producer.clock import default_concurrency, simulated_start
from clickstream_producer.main import _parser
from clickstream_producer.progress import Progress
from clickstream_producer.publisher import Publisher
from clickstream_producer.settings import ProducerSettings
from clickstream_runtime.settings import SettingsError, load

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCER_RATE", "5")
    monkeypatch.setenv("PRODUCER_USERS", "42")
    monkeypatch.setenv("KAFKA_ACKS", "1")
    args = _parser().parse_args(["--rate", "0", "--events", "100"])
    overrides = {f"producer_{k}": v for k, v in vars(args).items() if v is not None}
    settings = load(ProducerSettings, **overrides)
    assert settings.producer_rate == 0
    assert settings.producer_events == 100
    assert settings.producer_users == 42
    assert settings.producer_options()["acks"] == 1


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PRODUCER_RATE", "PRODUCER_USERS", "KAFKA_ACKS", "METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load(ProducerSettings)
    assert settings.metrics_port == 9101
    assert settings.producer_rate == 10
    assert settings.producer_users == 1000
    assert settings.producer_progress_every == 10
    options = settings.producer_options()
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is False


def test_bad_setting_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCER_RATE", "-1")
    with pytest.raises(SettingsError, match="PRODUCER_RATE"):
        load(ProducerSettings)


def test_backfill_ends_near_now() -> None:
    start = simulated_start(NOW, rate=0, events=90_000, concurrent_sessions=500, mean_gap_s=9.0)
    assert start == NOW - timedelta(seconds=90_000 * 9.0 / 500)
    assert simulated_start(NOW, rate=10, events=0, concurrent_sessions=90, mean_gap_s=9.0) == NOW
    explicit = NOW - timedelta(days=2)
    assert (
        simulated_start(
            NOW, rate=0, events=5, concurrent_sessions=1, mean_gap_s=9.0, start=explicit
        )
        == explicit
    )


def test_concurrency_follows_the_rate_within_the_users() -> None:
    assert default_concurrency(10, 1000, 9.0) == 90
    assert default_concurrency(1000, 1000, 9.0) == 1000
    assert default_concurrency(0, 1000, 9.0) == 500


def test_progress_every_n_but_at_most_once_a_second() -> None:
    now = [0.0]
    with structlog.testing.capture_logs() as logs:
        progress = Progress(10, clock=lambda: now[0])
        for _ in range(100):  # 1000 events within the same second: one line at most
            progress.sent_events(10)
        now[0] = 2.0
        progress.sent_events(10)
    lines = [entry for entry in logs if entry["event"] == "progress"]
    assert len(lines) == 1
    assert lines[0]["events"] == 1010
    assert lines[0]["rate"] == pytest.approx(1010 / 2.0, rel=0.01)


class _Batch:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.records, self._closed = capacity, [], False

    def append(self, *, timestamp: int, key: bytes, value: bytes) -> object | None:
        if len(self.records) >= self.capacity:
            return None
        self.records.append((timestamp, key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        self._closed = True


class _FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[int, _Batch]] = []

    def create_batch(self) -> _Batch:
        return _Batch(capacity=3)

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        import asyncio

        self.sent.append((partition, batch))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_publisher_batches_by_the_java_partition_of_the_key() -> None:
    producer = _FakeProducer()
    acked: list[int] = []
    publisher = Publisher(producer, "t", [0, 1, 2, 3, 4, 5], on_acked=acked.append)  # type: ignore[arg-type]
    keys = [f"s-{i:016x}".encode() for i in range(20)]
    for number, key in enumerate(keys * 2):
        await publisher.add(key, b"v%d" % number, 1_700_000_000_000)
    await publisher.drain()
    partitioner = DefaultPartitioner()
    delivered = 0
    for partition, batch in producer.sent:
        for _, key, _ in batch.records:
            assert partitioner(key, list(range(6)), list(range(6))) == partition
        delivered += batch.record_count()
    assert delivered == 40
    assert sum(acked) == 40
