"""Running the console scripts for a measurement: wait for exit, wait for catch-up.

Thin async helpers over :class:`ServiceGroup`; they fail with
:class:`BenchError` (naming the log to read) rather than hang.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from clickstream_devstack.bench import BenchError
from clickstream_devstack.bench.rig import committed
from clickstream_devstack.environment import KafkaTopics
from clickstream_devstack.services import Service, ServiceGroup

POLL_S = 0.2


async def wait_exit(service: Service, *, limit_s: float) -> int:
    """Wait for a service that ends by itself (a bounded producer run)."""
    deadline = time.monotonic() + limit_s
    while service.running:
        if time.monotonic() > deadline:
            raise BenchError(f"{service.name} did not finish within {limit_s:.0f} s")
        await asyncio.sleep(0.05)
    return service.process.returncode


async def wait_caught_up(
    connection: asyncpg.Connection,
    topics: KafkaTopics,
    total: int,
    services: ServiceGroup,
    *,
    limit_s: float,
) -> float:
    """Poll consumer_offsets until the group has committed ``total`` messages.

    Returns the monotonic time it was first seen; fails fast if a replica died.
    """
    deadline = time.monotonic() + limit_s
    done = 0
    while True:
        done = await committed(connection, topics)
        if done >= total:
            return time.monotonic()
        services.check_running()
        if time.monotonic() > deadline:
            raise BenchError(
                f"{topics.group}: {done:,} of {total:,} messages committed after {limit_s:.0f} s"
            )
        await asyncio.sleep(POLL_S)


async def wait_for_log(service: Service, needle: bytes, *, limit_s: float) -> None:
    """Wait until ``needle`` appears in the service's log (it has started doing its job)."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            if needle in service.log_path.read_bytes():
                return
        except FileNotFoundError:
            pass
        if not service.running:
            raise BenchError(service.describe_exit())
        if time.monotonic() > deadline:
            raise BenchError(f"{service.name}: no {needle.decode()!r} after {limit_s:.0f} s")
        await asyncio.sleep(0.1)
