"""The chaos demo's ending: the dead letters relayed, then clickstream-verify."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import asyncpg
from rich.console import Console

from clickstream_devstack.demo.chaos import Chaos
from clickstream_devstack.demo.options import POLL_S
from clickstream_ops.verify.report import Report
from clickstream_ops.verify.run import verify
from clickstream_ops.verify.settings import VerifySettings


async def closing_verdict(chaos: Chaos, env: Mapping[str, str], console: Console) -> Report:
    """What the chaos did, and clickstream-verify's report on the result."""
    i = chaos.injected
    console.print(
        f"[magenta]chaos[/]: {i.kills} replicas SIGKILLed, {i.freezes} frozen, "
        f"PostgreSQL restarted {i.postgres_restarts}×, {i.duplicates:,} duplicates, "
        f"{i.late:,} late events, {i.malformed:,} malformed messages",
        highlight=False,
    )
    with console.status("clickstream-verify: re-reading the topic…"):
        return await verify(verify_settings(env))


def verify_settings(env: Mapping[str, str]) -> VerifySettings:
    # model_validate reads only these values: no os.environ, no .env file.
    fields = VerifySettings.model_fields
    return VerifySettings.model_validate(
        {k.lower(): v for k, v in env.items() if k.lower() in fields}
    )


async def wait_relayed(dsn: str, limit_s: float) -> None:
    """Dead letters are copied to their topic after the commit: let the relay finish."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + limit_s
        query = "SELECT count(*) FROM dead_letters WHERE relayed_at IS NULL"
        while time.monotonic() < deadline:
            if not await conn.fetchval(query):
                return
            await asyncio.sleep(POLL_S)
    finally:
        await conn.close()
