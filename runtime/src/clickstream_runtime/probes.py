"""Readiness that follows a dependency with or without traffic: a probe loop.

A service's hot path only notices an outage when it next talks to the server;
with no traffic, ``/readyz`` would stay 200 for as long as nobody asks. Each
dependency therefore gets a background task, :func:`keep_probing`, that asks
a cheap question every ``interval_s`` (Kafka: cluster metadata; PostgreSQL:
``SELECT 1``) and sets the readiness condition of that name from the answer.
A probe that does not answer within ``timeout_s`` counts as down, so readiness
turns false at most ``interval_s + timeout_s`` after the server goes away and
true at most ``interval_s`` after it answers again.

Each transition is one structured event, ``dependency_down`` (with the reason)
or ``dependency_up`` (with how long it was down); a dependency that stays down
logs nothing more, however many probes fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from clickstream_runtime.health import Readiness

log = structlog.get_logger()

Probe = Callable[[], Awaitable[object]]

#: Longest reason kept from an exception message: ``/readyz`` is read by people.
_MAX_REASON = 300


async def keep_probing(
    name: str,
    probe: Probe,
    readiness: Readiness,
    stop: asyncio.Event,
    *,
    interval_s: float = 2.0,
    timeout_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``probe`` every ``interval_s`` until ``stop`` is set; set condition ``name``.

    The probe succeeds by returning (any value) and fails by raising or by not
    returning within ``timeout_s``. Returns promptly once ``stop`` is set (the
    probe in flight is cancelled); cancelling the task works as well.
    """
    up: bool | None = None  # unknown until the first answer
    down_since = clock()
    while not stop.is_set():
        ok, reason = await _ask(probe, timeout_s, stop)
        if stop.is_set():
            return
        readiness.set(name, ok, reason)
        if ok and up is not True:
            log.info(
                "dependency_up",
                dependency=name,
                down_for_s=round(clock() - down_since, 1) if up is False else None,
            )
        elif not ok and up is not False:
            down_since = clock()
            log.warning("dependency_down", dependency=name, reason=reason)
        up = ok
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await stop.wait()


async def _ask(probe: Probe, timeout_s: float, stop: asyncio.Event) -> tuple[bool, str]:
    """One probe, bounded by ``timeout_s`` and abandoned as soon as ``stop`` is set."""
    attempt = asyncio.ensure_future(_bounded(probe, timeout_s))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({attempt, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not attempt.done():
            attempt.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await attempt
    if attempt.cancelled():
        # Ours when stopping (the caller then ignores it), else the probe's own doing.
        return False, "stopping" if stop.is_set() else "the probe was cancelled"
    return attempt.result()


async def _bounded(probe: Probe, timeout_s: float) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout_s):
            await probe()
    except TimeoutError:
        return False, f"no answer within {timeout_s:g}s"
    except Exception as exc:  # any failure of the probe means "down"
        return False, describe(exc)
    return True, ""


def describe(exc: BaseException) -> str:
    """``Type: message`` in one line, short enough for ``/readyz``."""
    text = " ".join(str(exc).split())
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"


# --- Kafka ---------------------------------------------------------------------------------


class KafkaClient(Protocol):
    """What the probe needs of ``aiokafka.client.AIOKafkaClient``."""

    cluster: Any

    async def bootstrap(self) -> None: ...

    async def fetch_all_metadata(self) -> Any: ...


class TopicMissingError(Exception):
    """The broker answers but does not know the topic (deleted, or a new cluster)."""


def kafka_probe(client: KafkaClient, topic: str | None = None) -> Probe:
    """A probe that asks the cluster for its metadata through ``client``.

    ``client`` is an ``AIOKafkaClient``: a consumer's or producer's own
    (``consumer._client``, ``producer.client``) shares its connections, or a
    dedicated one from :func:`kafka_probe_client`. The request goes to the
    brokers the client knows, so a dead broker fails it; when the client never
    bootstrapped (the brokers were down at start) it bootstraps first. With
    ``topic``, a cluster that does not know that topic is down as well.
    """

    async def probe() -> None:
        if not client.cluster.brokers():
            await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        if topic is not None and topic not in metadata.topics():
            raise TopicMissingError(f"topic {topic!r} does not exist on the cluster")

    return probe


@contextlib.asynccontextmanager
async def kafka_probe_client(**client_options: Any) -> Any:
    """A dedicated ``AIOKafkaClient`` for probing, closed on exit; not bootstrapped yet.

    ``client_options`` are ``KafkaSettings.kafka_client_options()``; a client of
    its own keeps the probe independent of what the service's clients are doing.
    """
    from aiokafka.client import AIOKafkaClient  # noqa: PLC0415 - aiokafka is the service's dependency

    client = AIOKafkaClient(**client_options)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await client.close()


# --- PostgreSQL ----------------------------------------------------------------------------


class PostgresPool(Protocol):
    """What the probe needs of ``asyncpg.Pool``."""

    def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Awaitable[Any]: ...


def postgres_probe(pool: PostgresPool, timeout_s: float = 2.0) -> Probe:
    """A probe that runs ``SELECT 1`` through ``pool``.

    It waits for a free connection like any other query: a pool whose
    connections are all held by long transactions reads as down. Give the probe
    a pool of its own (``min_size=0, max_size=1``) when that can happen.
    """

    async def probe() -> None:
        value = await pool.fetchval("SELECT 1", timeout=timeout_s)
        if value != 1:
            raise RuntimeError(f"SELECT 1 returned {value!r}")

    return probe
