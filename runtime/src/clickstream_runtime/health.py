"""Health: the readiness a service reports, and the HTTP server that exposes it.

``/healthz`` answers 200 while the event loop runs (liveness), ``/readyz`` 200
or 503 from a :class:`Readiness`, ``/metrics`` the Prometheus exposition of a
registry. The server is a few lines of ``asyncio.start_server``: three GET
routes do not justify a web framework dependency.

Readiness is a set of named conditions (``kafka``, ``postgres``, ``assigned``...)
plus "in retry since T": a service retrying for longer than the threshold is not
ready even if every condition is true, because a loop that never succeeds is an
outage an orchestrator should see.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = structlog.get_logger()

_NOT_REPORTED = "not reported yet"
# A health probe is one short request line; anything slower or bigger is not a probe.
_REQUEST_TIMEOUT_S = 5.0
_MAX_HEADER_LINES = 100


@dataclass(frozen=True)
class ReadinessStatus:
    """One snapshot of the readiness, as ``/readyz`` shows it."""

    ready: bool
    conditions: dict[str, bool]
    failing: dict[str, str] = field(default_factory=dict)
    retry_since: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "conditions": self.conditions,
            "failing": self.failing,
            "retry_since": self.retry_since.isoformat() if self.retry_since else None,
        }


@dataclass
class _Retry:
    reason: str
    since_wall: datetime
    since_monotonic: float


class Readiness:
    """Mutable readiness of one process; cheap enough to update from the hot path."""

    def __init__(
        self,
        conditions: Iterable[str] = (),
        *,
        retry_threshold_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Declared conditions start false: a service is not ready before it says so.
        self._conditions: dict[str, bool] = dict.fromkeys(conditions, False)
        self._reasons: dict[str, str] = dict.fromkeys(self._conditions, _NOT_REPORTED)
        self._retry: _Retry | None = None
        self._threshold = retry_threshold_s
        self._clock = clock

    def set(self, name: str, ok: bool, reason: str = "") -> None:
        """Set condition ``name``; ``reason`` says why it is false (shown by ``/readyz``)."""
        previous = self._conditions.get(name)
        self._conditions[name] = ok
        self._reasons[name] = "" if ok else (reason or "false")
        if previous != ok:
            log.info("readiness_changed", condition=name, ok=ok, reason=reason or None)

    def enter_retry(self, reason: str) -> None:
        """Record a failed attempt; the first call of a streak fixes "since"."""
        if self._retry is None:
            self._retry = _Retry(reason, datetime.now(UTC), self._clock())
            log.warning("retry_started", reason=reason)
        else:
            self._retry.reason = reason

    def leave_retry(self) -> None:
        """The operation being retried succeeded; ends the streak."""
        if self._retry is not None:
            log.info("retry_ended", reason=self._retry.reason)
            self._retry = None

    @property
    def ready(self) -> bool:
        return self.status().ready

    def status(self) -> ReadinessStatus:
        failing = {name: self._reasons[name] for name, ok in self._conditions.items() if not ok}
        retry = self._retry
        if retry is not None:
            stuck_for = self._clock() - retry.since_monotonic
            if stuck_for > self._threshold:
                failing["retry"] = (
                    f"in retry since {retry.since_wall.isoformat()} "
                    f"({stuck_for:.0f}s > {self._threshold:.0f}s): {retry.reason}"
                )
        return ReadinessStatus(
            ready=not failing,
            conditions=dict(self._conditions),
            failing=failing,
            retry_since=retry.since_wall if retry else None,
        )


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class HealthServer:
    """The HTTP server; use :func:`serve_health` in services, this class in tests."""

    def __init__(self, registry: CollectorRegistry, readiness: Readiness) -> None:
        self._registry = registry
        self._readiness = readiness
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0 = any free port)."""
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)
        log.info("health_server_started", host=host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def route(self, method: str, path: str) -> _Response:
        path = path.split("?", 1)[0]
        if path not in ("/healthz", "/readyz", "/metrics"):
            return _Response(404, orjson.dumps({"error": f"no route {path}"}))
        if method not in ("GET", "HEAD"):
            return _Response(405, orjson.dumps({"error": f"{method} not allowed"}))
        if path == "/healthz":
            return _Response(200, orjson.dumps({"alive": True}))
        if path == "/readyz":
            status = self._readiness.status()
            return _Response(200 if status.ready else 503, orjson.dumps(status.to_json()))
        return _Response(200, generate_latest(self._registry), CONTENT_TYPE_LATEST)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                response, method = await self._read_and_route(reader)
            writer.write(_encode(response, head=method == "HEAD"))
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            # A probe that hangs up or dawdles is its problem, not a service error.
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_and_route(self, reader: asyncio.StreamReader) -> tuple[_Response, str]:
        request_line = (await reader.readline()).decode("latin-1").split()
        # Drain the headers so that the client sees a clean close, not a reset.
        for _ in range(_MAX_HEADER_LINES):
            if (await reader.readline()) in (b"\r\n", b"\n", b""):
                break
        if len(request_line) != 3 or not request_line[2].startswith("HTTP/"):
            return _Response(400, orjson.dumps({"error": "bad request line"})), "GET"
        method, target, _ = request_line
        return self.route(method, target), method


def _encode(response: _Response, *, head: bool) -> bytes:
    header = (
        f"HTTP/1.1 {response.status} {_REASONS[response.status]}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    return header if head else header + response.body


@contextlib.asynccontextmanager
async def serve_health(
    host: str, port: int, registry: CollectorRegistry, readiness: Readiness
) -> AsyncIterator[HealthServer | None]:
    """Serve health and metrics for the body of the ``async with``; ``port=0`` turns it off.

    Meant for an ``AsyncExitStack`` in ``run``: the server stops when the service does.
    """
    if port == 0:
        log.info("health_server_disabled", reason="METRICS_PORT=0")
        yield None
        return
    server = HealthServer(registry, readiness)
    await server.start(host, port)
    try:
        yield server
    finally:
        await server.stop()
        log.info("health_server_stopped", port=port)
