"""Run the real aggregator loop in-process and wait for it to catch up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping

import asyncpg

from clickstream_aggregator.main import run
from clickstream_aggregator.migrate import migrate
from clickstream_aggregator.settings import AggregatorSettings


def settings_from_env(env: Mapping[str, str], **overrides: object) -> AggregatorSettings:
    fields = AggregatorSettings.model_fields
    values: dict[str, object] = {k.lower(): v for k, v in env.items() if k.lower() in fields}
    values.update(overrides)
    return AggregatorSettings(_env_file=None, **values)  # type: ignore[call-arg]


async def applied_offsets(dsn: str, group: str, topic: str) -> int:
    """How many messages of the topic the group has committed (sum of next offsets)."""
    conn = await asyncpg.connect(dsn)
    try:
        with contextlib.suppress(asyncpg.UndefinedTableError):
            value = await conn.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets "
                "WHERE group_id = $1 AND topic = $2",
                group,
                topic,
            )
            return int(value)
        return 0
    finally:
        await conn.close()


async def wait_applied(
    dsn: str,
    group: str,
    topic: str,
    at_least: int,
    *,
    timeout: float = 120.0,
    running: asyncio.Task[None] | None = None,
) -> int:
    """Poll until the committed offsets reach ``at_least`` (fails fast if the service died)."""
    deadline = time.monotonic() + timeout
    while True:
        done = await applied_offsets(dsn, group, topic)
        if done >= at_least:
            return done
        if running is not None and running.done():
            running.result()
            raise AssertionError(f"aggregator stopped at {done}/{at_least}")
        if time.monotonic() > deadline:
            raise AssertionError(f"only {done}/{at_least} messages applied after {timeout}s")
        await asyncio.sleep(0.2)


async def wait_relayed(
    dsn: str, *, timeout: float = 120.0, running: asyncio.Task[None] | None = None
) -> None:
    """Poll until no dead letter is pending (the relay's copies are committed in Kafka).

    Call it while the aggregator runs: its relay copies the rows a batch
    dead-lettered only after that batch committed, and a stop drains the outbox
    for a moment at most (whatever is left waits for the next owner).
    """
    deadline = time.monotonic() + timeout
    while True:
        conn = await asyncpg.connect(dsn)
        try:
            pending = await conn.fetchval(
                "SELECT count(*) FROM dead_letters WHERE relayed_at IS NULL"
            )
        finally:
            await conn.close()
        if not pending:
            return
        if running is not None and running.done():
            running.result()
            raise AssertionError(f"aggregator stopped with {pending} dead letters pending")
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending} dead letters not relayed after {timeout}s")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def claimed_pool(dsn: str, group: str, topic: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a migrated database where ``group`` owns ``topic``'s partition 0 at
    epoch 1, as a replica's claim leaves it: a batch transaction can commit there."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            await conn.execute(
                "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, epoch) "
                "VALUES ($1, $2, 0, 0, 1)",
                group,
                topic,
            )
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def running_aggregator(settings: AggregatorSettings) -> AsyncIterator[asyncio.Task[None]]:
    """The real ``run(settings, stop)`` as a task; stopped (gracefully) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
