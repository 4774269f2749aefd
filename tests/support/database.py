"""One statement on a test's database, on a connection of its own."""

from __future__ import annotations

from typing import Any

import asyncpg


async def fetch(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def fetchval(dsn: str, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def execute(dsn: str, sql: str, *args: object) -> str:
    """The statement's status, e.g. ``DELETE 3``."""
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.execute(sql, *args))
    finally:
        await conn.close()
