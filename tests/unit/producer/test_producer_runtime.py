"""Producer settings, clock start, progress throttling and batching, without a broker."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner

from clickstream_producer.clock import simulated_start
from clickstream_producer.main import _parser, settings_from
from clickstream_producer.progress import Progress
from clickstream_producer.publisher import DeliveryFailed, Publisher
from clickstream_producer.settings import ProducerSettings
from clickstream_producer.sizing import Sizing, size_for
from clickstream_runtime.settings import SettingsError, load

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCER_RATE", "5")
    monkeypatch.setenv("PRODUCER_USERS", "42")
    monkeypatch.setenv("KAFKA_ACKS", "1")
    settings = settings_from(["--rate", "0", "--events", "100"])
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
    assert settings.producer_users is None  # sized from the rate
    assert settings.producer_startup_timeout_s == 0  # wait for Kafka until stopped
    assert settings.producer_progress_every == 10
    options = settings.producer_options()
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is False


def test_bad_setting_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCER_RATE", "-1")
    with pytest.raises(SettingsError, match="PRODUCER_RATE"):
        load(ProducerSettings)


def test_a_bad_flag_is_named_as_typed_and_every_problem_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRODUCER_PROGRESS_EVERY", "0")
    with pytest.raises(SettingsError) as raised:
        settings_from(["--rate", "-5", "--users", "0"])
    message = str(raised.value)
    assert "--rate -5: must be at least 0" in message
    assert "--users 0: must be at least 1" in message
    assert "PRODUCER_PROGRESS_EVERY=0:" in message  # from the environment: its variable
    assert "PRODUCER_RATE" not in message
    assert "PRODUCER_USERS" not in message
    assert "ProducerSettings" not in message
    with pytest.raises(SettingsError, match="--events ten: "):
        settings_from(["--events", "ten"])
    assert "Value error" not in message


def test_idempotence_needs_acks_from_every_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_ENABLE_IDEMPOTENCE", "true")
    assert load(ProducerSettings).producer_options()["enable_idempotence"] is True
    monkeypatch.setenv("KAFKA_ACKS", "1")
    with pytest.raises(SettingsError, match="KAFKA_ENABLE_IDEMPOTENCE=true needs KAFKA_ACKS=all"):
        load(ProducerSettings)


def test_help_is_plain_text() -> None:
    text = _parser().format_help()
    assert "`" not in text
    assert "--rate" in text
    assert "PRODUCER_STARTUP_TIMEOUT_S" in text


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


def test_users_and_sessions_are_sized_from_the_rate() -> None:
    assert size_for(10, mean_gap_s=9.0) == Sizing(1000, 90, 10.0)
    assert size_for(0, mean_gap_s=9.0) == Sizing(1000, 500, 0.0)
    big = size_for(8000, mean_gap_s=9.0)
    assert (big.users, big.concurrent_sessions, big.hint) == (144_000, 72_000, None)
    assert big.expected_rate == pytest.approx(8000)
    # Flags win; a given --concurrent-sessions sizes the default users.
    assert size_for(5, mean_gap_s=9.0, users=50) == Sizing(50, 45, 5.0)
    assert size_for(10, mean_gap_s=9.0, concurrent_sessions=700).users == 1400


def test_flags_that_cap_the_rate_are_named_with_what_is_needed() -> None:
    by_users = size_for(8000, mean_gap_s=9.0, users=1000)
    assert by_users.concurrent_sessions == 1000
    assert by_users.hint is not None
    assert by_users.hint.startswith("--users 1000 allows at most 1000 sessions at once")
    assert "need about 72000" in by_users.hint
    by_sessions = size_for(8000, mean_gap_s=9.0, users=200_000, concurrent_sessions=900)
    assert by_sessions.hint is not None
    assert by_sessions.hint.startswith("--concurrent-sessions 900 gives about 100.0 events/s")
    assert "--users" not in by_sessions.hint


def test_progress_every_n_but_at_most_once_a_second() -> None:
    now = [0.0]
    with structlog.testing.capture_logs() as logs:
        progress = Progress(10, clock=lambda: now[0])
        for _ in range(100):  # 1000 events within the same second
            progress.sent_events(10)
        now[0] = 2.0
        progress.sent_events(10)
    lines = [entry for entry in logs if entry["event"] == "progress"]
    # The first N events are reported at once, then nothing more within that second.
    assert [line["events"] for line in lines] == [10, 1010]
    assert lines[1]["rate"] == pytest.approx(1000 / 2.0, rel=0.01)


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

    def size(self) -> int:
        return sum(len(value) for _, _, value in self.records)

    def close(self) -> None:
        self._closed = True


class _FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[int, _Batch]] = []

    def create_batch(self) -> _Batch:
        return _Batch(capacity=3)

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
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


class _LeaderlessProducer(_FakeProducer):
    """Like aiokafka: ``send_batch`` waits while the partition's previous batch is
    queued, for ever on a partition without a leader (until ``elected``)."""

    def __init__(self, leaderless: int) -> None:
        super().__init__()
        self.leaderless = leaderless
        self.elected = asyncio.Event()
        self.queued: set[int] = set()

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        if partition == self.leaderless:
            if partition in self.queued:
                await self.elected.wait()
            self.queued.add(partition)
        return await super().send_batch(batch, topic, partition=partition)


def _keys_by_partition(partitions: int) -> dict[int, list[bytes]]:
    partitioner = DefaultPartitioner()
    keys: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for i in range(2000):
        key = f"s-{i:016x}".encode()
        keys[partitioner(key, list(range(partitions)), list(range(partitions)))].append(key)
    return keys


async def test_a_partition_without_a_leader_holds_back_only_itself() -> None:
    producer = _LeaderlessProducer(leaderless=2)
    acked: list[int] = []
    publisher = Publisher(producer, "t", list(range(6)), on_acked=acked.append)  # type: ignore[arg-type]
    keys = _keys_by_partition(6)
    # Ten full batches for every partition: the leaderless one takes its first,
    # then its lane waits for the election, as aiokafka's accumulator makes it.
    for round_ in range(30):
        for partition in range(6):
            await asyncio.wait_for(
                publisher.add(keys[partition][round_], b"v", 1_700_000_000_000), timeout=5
            )
    await asyncio.sleep(0)
    await publisher.flush()
    for _ in range(10):
        await asyncio.sleep(0)
    sent = Counter(partition for partition, _ in producer.sent)
    assert sent[2] == 1
    assert all(sent[p] == 10 for p in (0, 1, 3, 4, 5)), sent
    assert publisher.unacknowledged() == 27  # nine batches of three wait in the lane
    producer.elected.set()
    await asyncio.wait_for(publisher.drain(), timeout=5)
    assert sum(acked) == 180
    assert [b.records[0][1] for p, b in producer.sent if p == 2] == [
        keys[2][i] for i in range(0, 30, 3)
    ]  # in order


async def test_lanes_hold_a_bounded_amount_then_submit_waits() -> None:
    producer = _LeaderlessProducer(leaderless=0)
    publisher = Publisher(producer, "t", [0, 1], held_bytes_limit=10)  # type: ignore[arg-type]
    keys = _keys_by_partition(2)[0]
    # Batches of three 2-byte values (6 bytes each). The first goes out; the lane
    # then waits with the second, and the third reaches the limit.
    for key in keys[:6]:
        await publisher.add(key, b"vv", 1)
    await asyncio.sleep(0)
    for key in keys[6:9]:
        await publisher.add(key, b"vv", 1)
    adding = asyncio.ensure_future(publisher.add(keys[9], b"vv", 1))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not adding.done()  # held: waits for room
    producer.elected.set()
    await asyncio.wait_for(adding, timeout=5)
    await asyncio.wait_for(publisher.drain(), timeout=5)
    assert sum(b.record_count() for _, b in producer.sent) == 10


async def test_a_batch_the_client_refuses_ends_the_run_at_the_next_hand_over() -> None:
    class Refusing(_FakeProducer):
        async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
            raise KafkaTimeoutError()

    failed: list[int] = []
    publisher = Publisher(
        Refusing(),
        "t",
        [0],
        on_failed=lambda n, _e: failed.append(n),  # type: ignore[arg-type]
    )
    for n in range(3):
        await publisher.add(b"k", b"v%d" % n, 1)
    await publisher.flush()
    await asyncio.sleep(0)
    await publisher.add(b"k", b"v", 1)
    with pytest.raises(DeliveryFailed):
        await publisher.flush()  # hands over the next batch: refused
    assert failed == [3]
    assert publisher.unacknowledged() == 4
    with pytest.raises(DeliveryFailed):
        await publisher.drain()
    await publisher.close()
