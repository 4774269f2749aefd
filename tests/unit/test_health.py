"""The health server over real localhost TCP, and the readiness rules behind /readyz."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from prometheus_client import CollectorRegistry, Counter

from clickstream_runtime.health import HealthServer, Readiness, serve_health
from clickstream_runtime.metrics import create_registry


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()  # the server closes after one response
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    return int(status_line.split()[1]), headers, body


Started = tuple[HealthServer, Readiness, CollectorRegistry]


@pytest.fixture
async def started() -> AsyncIterator[Started]:
    readiness = Readiness(["kafka", "postgres"])
    registry = create_registry("test-service", "1.2.3", readiness)
    server = HealthServer(registry, readiness)
    await server.start("127.0.0.1", 0)
    yield server, readiness, registry
    await server.stop()


async def test_healthz_is_200_while_the_loop_runs(started: Started) -> None:
    server, _, _ = started
    status, headers, body = await http_get(server.port, "/healthz")
    assert status == 200
    assert json.loads(body) == {"alive": True}
    assert headers["content-length"] == str(len(body))


async def test_readyz_lists_failing_conditions_until_all_are_true(started: Started) -> None:
    server, readiness, _ = started
    status, _, body = await http_get(server.port, "/readyz")
    assert status == 503
    assert json.loads(body)["failing"] == {
        "kafka": "not reported yet",
        "postgres": "not reported yet",
    }

    readiness.set("kafka", True)
    readiness.set("postgres", False, "connection refused")
    status, _, body = await http_get(server.port, "/readyz")
    assert status == 503
    assert json.loads(body)["failing"] == {"postgres": "connection refused"}

    readiness.set("postgres", True)
    status, _, body = await http_get(server.port, "/readyz")
    assert status == 200
    document = json.loads(body)
    assert document["ready"] is True
    assert document["conditions"] == {"kafka": True, "postgres": True}


async def test_metrics_exposes_the_given_registry_and_readiness(started: Started) -> None:
    server, readiness, registry = started
    Counter("events_consumed", "Events read", registry=registry).inc(3)
    readiness.set("kafka", True)
    status, headers, body = await http_get(server.port, "/metrics")
    text = body.decode()
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert "events_consumed_total 3.0" in text
    assert 'clickstream_build_info{service="test-service",version="1.2.3"} 1.0' in text
    assert 'clickstream_readiness_condition{condition="kafka"} 1.0' in text
    assert "clickstream_ready 0.0" in text


async def test_unknown_path_method_and_garbage(started: Started) -> None:
    server, _, _ = started
    assert (await http_get(server.port, "/nope"))[0] == 404
    assert (await http_get(server.port, "/healthz", method="POST"))[0] == 405
    status, headers, body = await http_get(server.port, "/healthz", method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) > 0

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"hello\r\n\r\n")
    await writer.drain()
    assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
    writer.close()
    await writer.wait_closed()


def test_retry_longer_than_the_threshold_makes_the_service_unready() -> None:
    clock = FakeClock()
    readiness = Readiness(["postgres"], retry_threshold_s=30, clock=clock)
    readiness.set("postgres", True)
    readiness.enter_retry("postgres: connection refused")
    clock.now += 29
    readiness.enter_retry("postgres: still refused")  # a later attempt keeps the start time
    assert readiness.ready
    assert readiness.status().retry_since is not None

    clock.now += 2
    status = readiness.status()
    assert not status.ready
    assert status.failing["retry"].startswith("in retry since ")
    assert status.failing["retry"].endswith("(31s > 30s): postgres: still refused")

    readiness.leave_retry()
    assert readiness.ready
    assert readiness.status().retry_since is None


def test_undeclared_conditions_count_once_set() -> None:
    readiness = Readiness()
    assert readiness.ready
    readiness.set("assigned", False)
    assert readiness.status().failing == {"assigned": "false"}


async def test_serve_health_port_zero_is_off_and_otherwise_stops_with_the_stack() -> None:
    readiness = Readiness()
    registry = CollectorRegistry()
    async with serve_health("127.0.0.1", 0, registry, readiness) as off:
        assert off is None

    probe = HealthServer(registry, readiness)
    await probe.start("127.0.0.1", 0)
    port = probe.port
    await probe.stop()  # frees a port the OS just proved free

    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            serve_health("127.0.0.1", port, registry, readiness)
        )
        assert server is not None
        assert (await http_get(port, "/readyz"))[0] == 200
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
