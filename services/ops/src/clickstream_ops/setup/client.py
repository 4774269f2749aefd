"""A small JSON-over-HTTP client for OpenSearch and Dashboards with set-up error policy.

Policy, in one place: 401/403 stop at once with a one-line message (retrying
cannot fix credentials); unreachable or 5xx answers are retried only while
waiting for the service to come up (:meth:`ApiClient.wait_until_ready`); any
other unexpected status stops with the server's own reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
import structlog

from clickstream_ops.setup.endpoint import Endpoint

log = structlog.get_logger()

Sleep = Callable[[float], Awaitable[None]]
Json = Any


class SetupError(SystemExit):
    """Set-up cannot continue: one line for the operator, exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(f"clickstream-setup: {message}")


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff within a total budget (of sleep time, not wall time)."""

    initial_s: float = 0.5
    cap_s: float = 10.0
    budget_s: float = 120.0

    def delays(self) -> Iterator[float]:
        spent, delay = 0.0, self.initial_s
        while spent < self.budget_s:
            step = min(delay, self.cap_s, self.budget_s - spent)
            yield step
            spent += step
            delay *= 2


@dataclass(frozen=True)
class Response:
    status: int
    body: Json


class ApiClient:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._http = httpx.AsyncClient(
            base_url=endpoint.url,
            auth=endpoint.auth,
            verify=endpoint.verify(),
            timeout=timeout_s,
            headers=dict(headers or {}),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Json = None,
        params: Mapping[str, str | int] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        allow: tuple[int, ...] = (),
    ) -> Response:
        """Send one request; 2xx and the ``allow``-ed statuses return, others raise."""
        try:
            reply = await self._http.request(method, path, json=json, params=params, files=files)
        except httpx.HTTPError as exc:
            raise SetupError(f"cannot reach {self._where()}: {_describe(exc)}") from None
        if reply.status_code < 300 or reply.status_code in allow:
            return Response(reply.status_code, _json(reply))
        raise SetupError(self._refusal(method, path, reply))

    async def wait_until_ready(
        self, path: str, ready: Callable[[Json], bool], *, backoff: Backoff, sleep: Sleep
    ) -> None:
        """Poll ``GET path`` until ``ready(body)``; bounded by ``backoff.budget_s``."""
        delays = backoff.delays()
        attempt = 0
        while True:
            attempt += 1
            problem = await self._probe(path, ready)
            if problem is None:
                # "target", not "service": that key names this program in every log line.
                log.info("service_ready", target=self.endpoint.name, url=self.endpoint.url)
                return
            delay = next(delays, None)
            if delay is None:
                raise SetupError(
                    f"{self._where()} not ready after {attempt} attempts "
                    f"({backoff.budget_s:g}s): {problem}"
                )
            log.info(
                "service_not_ready",
                target=self.endpoint.name,
                url=self.endpoint.url,
                attempt=attempt,
                problem=problem,
                retry_in_s=delay,
            )
            await sleep(delay)

    async def _probe(self, path: str, ready: Callable[[Json], bool]) -> str | None:
        """Return why the service is not ready yet, or None when it is."""
        try:
            reply = await self._http.get(path)
        except httpx.HTTPError as exc:
            return _describe(exc)
        if reply.status_code in (401, 403):
            raise SetupError(self._refusal("GET", path, reply))
        if reply.status_code >= 300:
            return f"HTTP {reply.status_code}"
        body = _json(reply)
        return None if ready(body) else f"not ready yet ({_short(body)})"

    def _where(self) -> str:
        return f"{self.endpoint.name} at {self.endpoint.url}"

    def _refusal(self, method: str, path: str, reply: httpx.Response) -> str:
        status = reply.status_code
        if status == 401:
            return (
                f"{self._where()} rejected the credentials (HTTP 401): check OPENSEARCH_URI "
                "or OPENSEARCH_USER/OPENSEARCH_PASSWORD"
            )
        if status == 403:
            return (
                f"{self._where()} denied {method} {path} (HTTP 403): the user lacks the "
                "permission (the set-up needs an admin user, e.g. Aiven's avnadmin)"
            )
        return f"{self._where()} answered {method} {path} with HTTP {status}: {_reason(reply)}"


def _json(reply: httpx.Response) -> Json:
    if not reply.content:
        return None
    try:
        return reply.json()
    except ValueError:
        return reply.text


def _reason(reply: httpx.Response) -> str:
    """The server's own explanation: OpenSearch's error.reason, Dashboards' message."""
    body = _json(reply)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            causes = error.get("root_cause") or [error]
            first = causes[0] if isinstance(causes, list) and causes else error
            if isinstance(first, dict) and "reason" in first:
                return f"{first.get('type', 'error')}: {first['reason']}"
        if "message" in body:
            return str(body["message"])
    return _short(body)


def _short(value: Json, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def _describe(exc: httpx.HTTPError) -> str:
    # httpx messages can be empty (e.g. some ConnectErrors); the class name is still useful.
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def sleep_unless_stopped(stop: asyncio.Event, delay: float) -> None:
    """The production ``Sleep``: returns after ``delay`` or aborts when stop is requested."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay)
    except TimeoutError:
        return
    raise SetupError("stopped while waiting for the service")
