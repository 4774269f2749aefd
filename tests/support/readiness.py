"""Ask a service's health server, and wait for a condition with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from clickstream_devstack.servers.ports import LOOPBACK


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """``GET /readyz``: the status code and the JSON body."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Poll ``check`` every 0.2 s until it is true; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.2)
