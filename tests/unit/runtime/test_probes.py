"""``keep_probing``: readiness follows a dependency without traffic, one event per transition."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from clickstream_runtime import logs
from clickstream_runtime.health import Readiness
from clickstream_runtime.probes import (
    TopicMissingError,
    describe,
    kafka_probe,
    keep_probing,
    postgres_probe,
)
from support.logging_state import restored_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``configure`` changes process-wide state: put it back for the other tests."""
    with restored_logging():
        yield


class Switch:
    """A dependency the test turns on and off; counts the probes it answered."""

    def __init__(self) -> None:
        self.up = True
        self.hang = False
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if not self.up:
            raise ConnectionRefusedError("connection refused")


async def eventually(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s}s")
        await asyncio.sleep(0.01)


@pytest.fixture
async def probing() -> AsyncIterator[tuple[Switch, Readiness, asyncio.Event, asyncio.Task[None]]]:
    switch, readiness, stop = Switch(), Readiness(["kafka"]), asyncio.Event()
    task = asyncio.create_task(
        keep_probing("kafka", switch, readiness, stop, interval_s=0.02, timeout_s=0.2)
    )
    yield switch, readiness, stop, task
    stop.set()
    async with asyncio.timeout(2):
        await task


def _events(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


async def test_readiness_follows_the_dependency_down_and_up(
    probing: tuple[Switch, Readiness, asyncio.Event, asyncio.Task[None]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("test-service", fmt="json")
    switch, readiness, _, _ = probing
    await eventually(lambda: readiness.status().conditions["kafka"])

    switch.up = False
    await eventually(lambda: not readiness.status().conditions["kafka"])
    assert readiness.status().failing["kafka"] == "ConnectionRefusedError: connection refused"
    calls = switch.calls
    await eventually(lambda: switch.calls >= calls + 5)  # still down: no more events

    switch.up = True
    await eventually(lambda: readiness.status().conditions["kafka"])

    transitions = [
        e for e in _events(capsys.readouterr().err) if e["event"].startswith("dependency_")
    ]
    assert [e["event"] for e in transitions] == [
        "dependency_up",
        "dependency_down",
        "dependency_up",
    ]
    assert all(e["dependency"] == "kafka" for e in transitions)
    assert transitions[1]["reason"] == "ConnectionRefusedError: connection refused"
    assert transitions[0]["down_for_s"] is None
    assert transitions[2]["down_for_s"] >= 0


async def test_a_probe_that_does_not_answer_counts_as_down(
    probing: tuple[Switch, Readiness, asyncio.Event, asyncio.Task[None]],
) -> None:
    switch, readiness, _, _ = probing
    await eventually(lambda: readiness.status().conditions["kafka"])
    switch.hang = True
    await eventually(lambda: not readiness.status().conditions["kafka"])
    assert readiness.status().failing["kafka"] == "no answer within 0.2s"


async def test_stop_ends_the_loop_even_during_a_hanging_probe() -> None:
    switch, readiness, stop = Switch(), Readiness(["kafka"]), asyncio.Event()
    switch.hang = True
    task = asyncio.create_task(
        keep_probing("kafka", switch, readiness, stop, interval_s=60, timeout_s=60)
    )
    await eventually(lambda: switch.calls == 1)
    stop.set()
    async with asyncio.timeout(1):
        await task
    # A probe abandoned because of the stop says nothing about the dependency.
    assert readiness.status().failing["kafka"] == "not reported yet"


async def test_stop_ends_the_loop_between_probes() -> None:
    switch, readiness, stop = Switch(), Readiness(["kafka"]), asyncio.Event()
    task = asyncio.create_task(
        keep_probing("kafka", switch, readiness, stop, interval_s=60, timeout_s=60)
    )
    await eventually(lambda: readiness.status().conditions["kafka"])
    stop.set()
    async with asyncio.timeout(1):
        await task


def test_describe_is_one_bounded_line() -> None:
    assert describe(OSError("a\n  b")) == "OSError: a b"
    assert describe(TimeoutError()) == "TimeoutError"
    assert len(describe(ValueError("x" * 1000))) == 300


class FakeCluster:
    def __init__(self, brokers: list[int], topics: set[str]) -> None:
        self._brokers, self._topics = brokers, topics

    def brokers(self) -> list[int]:
        return self._brokers

    def topics(self) -> set[str]:
        return self._topics


class FakeKafkaClient:
    def __init__(self, brokers: list[int], topics: set[str]) -> None:
        self.cluster = FakeCluster(brokers, topics)
        self.bootstraps = 0

    async def bootstrap(self) -> None:
        self.bootstraps += 1
        self.cluster = FakeCluster([1], self.cluster.topics())

    async def fetch_all_metadata(self) -> FakeCluster:
        return self.cluster


async def test_kafka_probe_bootstraps_a_client_that_never_did() -> None:
    client = FakeKafkaClient([], {"events"})
    probe = kafka_probe(client, "events")
    await probe()
    await probe()
    assert client.bootstraps == 1


async def test_kafka_probe_fails_when_the_topic_is_gone() -> None:
    probe = kafka_probe(FakeKafkaClient([1], {"other"}), "events")
    with pytest.raises(TopicMissingError, match="'events' does not exist"):
        await probe()


class FakePool:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.timeouts: list[float | None] = []

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        assert query == "SELECT 1"
        self.timeouts.append(timeout)
        return self.value


async def test_postgres_probe_runs_select_1_with_its_timeout() -> None:
    pool = FakePool(1)
    await postgres_probe(pool, timeout_s=1.5)()
    assert pool.timeouts == [1.5]
    with pytest.raises(RuntimeError, match="returned 2"):
        await postgres_probe(FakePool(2))()
