"""Freshness: how long after an event is produced its session row reflects it.

Every ``interval`` the bench produces one valid probe event with a session id
of its own (so "visible" is unambiguous: the row exists) and polls
session_metrics for all outstanding probes in one query. The delay runs from
handing the probe to the Kafka client to the poll that first sees its row, so
it includes the producer's send, the aggregator's batch wait and transaction,
and at most one poll interval of the bench's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from clickstream_schema import ClickEvent, DeviceType, EventType, encode

#: How often the database is asked which outstanding probes have arrived.
_POLL_INTERVAL_S = 0.02
_VISIBLE = "SELECT session_id FROM session_metrics WHERE session_id = ANY($1::text[])"


@dataclass
class ProbeRun:
    delays_ms: list[float] = field(default_factory=list)
    sent: int = 0
    #: Probes never seen within the grace period after the window.
    missing: int = 0
    #: Their delays so far: lower bounds, so the percentiles are not flattered by leaving them out.
    censored_ms: list[float] = field(default_factory=list)

    def all_delays_ms(self) -> list[float]:
        return self.delays_ms + self.censored_ms


def probe_event() -> ClickEvent:
    return ClickEvent(
        event_id=uuid.uuid4(),
        timestamp=datetime.now(UTC),
        user_id="bench-probe",
        session_id=f"probe-{uuid.uuid4().hex}",
        event_type=EventType.PAGE_VIEW,
        page_url="https://shop.example/bench/probe",
        user_agent="clickstream-bench",
        ip_address="192.0.2.2",  # pydantic parses the string
        device_type=DeviceType.DESKTOP,
        viewport_size="1920x1080",
    )


class Prober:
    def __init__(
        self,
        client_options: dict[str, Any],
        topic: str,
        dsn: str,
        *,
        interval: float = 0.1,
        grace: float = 10.0,
    ) -> None:
        self._client_options = client_options
        self._topic = topic
        self._dsn = dsn
        self._interval = interval
        self._grace = grace
        self._pending: dict[str, float] = {}
        self._result = ProbeRun()

    async def run(self, duration: float) -> ProbeRun:
        # linger 0: a probe must not wait for a batch to fill.
        producer = AIOKafkaProducer(**self._client_options, acks="all", linger_ms=0)
        await producer.start()
        connection = await asyncpg.connect(self._dsn)
        emitting = True
        poller = asyncio.create_task(self._poll(connection, lambda: emitting), name="probe-poll")
        try:
            await self._emit(producer, duration)
            emitting = False
            await poller
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await connection.close()
            await producer.stop()
        now = time.monotonic()
        self._result.missing = len(self._pending)
        self._result.censored_ms = [(now - sent) * 1000 for sent in self._pending.values()]
        return self._result

    async def _emit(self, producer: AIOKafkaProducer, duration: float) -> None:
        started = time.monotonic()
        tick = started
        while tick - started < duration:
            key, value = encode(probe_event())
            self._pending[key.decode()] = time.monotonic()
            # Not waiting for the ack: the clock runs from the moment of production.
            await producer.send(self._topic, value=value, key=key)
            self._result.sent += 1
            tick += self._interval
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    async def _poll(self, connection: asyncpg.Connection, emitting: Callable[[], bool]) -> None:
        give_up: float | None = None
        while emitting() or self._pending:
            if not emitting():
                give_up = give_up or time.monotonic() + self._grace
                if time.monotonic() > give_up:
                    return
            if self._pending:
                rows = await connection.fetch(_VISIBLE, list(self._pending))
                now = time.monotonic()
                for row in rows:
                    sent = self._pending.pop(row["session_id"], None)
                    if sent is not None:
                        self._result.delays_ms.append((now - sent) * 1000)
            await asyncio.sleep(_POLL_INTERVAL_S)
