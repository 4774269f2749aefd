"""Waiting on work that a stop (SIGTERM/SIGINT) cuts short.

Starting Kafka, building the live generator, the generating loop and the
drain all wait for their work or the stop, whichever comes first; what
becomes of work that is not done is each caller's decision.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def done_before_stop(
    work: asyncio.Future[Any], stop: asyncio.Event, timeout_s: float | None = None
) -> bool:
    """Wait until ``work`` is done, ``stop`` is set or ``timeout_s`` passed; True if it is done.

    ``work`` is neither cancelled nor awaited here: its result or error is the caller's.
    """
    stopped = asyncio.ensure_future(stop.wait())
    either: set[asyncio.Future[Any]] = {work, stopped}
    try:
        await asyncio.wait(either, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    return work.done()
