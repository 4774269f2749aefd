"""The one entrypoint shape of every service.

``main()`` builds the settings, then ``serve(run, settings)`` runs
``run(settings, stop)`` on uvloop; SIGINT/SIGTERM set ``stop`` so the service
finishes its batch, commits and returns. Tests call ``run`` directly with their
own ``stop`` event.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
import uvloop

S = TypeVar("S")

log = structlog.get_logger()


async def _with_signals(run: Callable[[S, asyncio.Event], Awaitable[None]], settings: S) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _request_stop, stop, signum)
    await run(settings, stop)


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    log.info("stop_requested", signal=signal.Signals(signum).name)
    stop.set()


def serve(run: Callable[[S, asyncio.Event], Awaitable[None]], settings: S) -> None:
    uvloop.run(_with_signals(run, settings))
