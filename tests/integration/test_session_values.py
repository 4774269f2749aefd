"""Timestamps and revenue reach ``session_metrics`` exactly, though they travel as integers.

The upsert sends them as microseconds since the epoch and as cents (the driver
encodes integers several times faster than datetimes and Decimals), and
PostgreSQL converts them back. Every instant the contract admits, at every UTC
offset it admits, and every revenue the column holds must come back unchanged;
a second batch of the same session must merge them by the same rules.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstream_aggregator.aggregate import SessionAggregate
from clickstream_aggregator.policy import Verdict, verdict
from clickstream_aggregator.repository import batch_writes
from clickstream_aggregator.session_columns import session_rows
from clickstream_schema.fields import MAX_UTC_OFFSET, TIMESTAMP_MAX, TIMESTAMP_MIN
from support.readiness import until
from support.sessions import a_session

_MINUTES = MAX_UTC_OFFSET // timedelta(minutes=1)
_INSTANTS = st.builds(
    lambda instant, minutes: instant.astimezone(timezone(timedelta(minutes=minutes))),
    st.datetimes(
        min_value=TIMESTAMP_MIN.replace(tzinfo=None),
        max_value=(TIMESTAMP_MAX - timedelta(microseconds=1)).replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
    st.integers(-_MINUTES, _MINUTES),
)
#: What DECIMAL(14, 2) holds, halved so that two of them add up to what it holds.
_REVENUE = st.integers(0, (10**14 - 1) // 2).map(lambda cents: Decimal(cents).scaleb(-2))
_IDS = (f"s-{n}" for n in itertools.count())


async def _upserted(dsn: str, *batches: SessionAggregate) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        for session in batches:
            await batch_writes.upsert_sessions(conn, session_rows([session]))
        row = await conn.fetchrow(
            "SELECT first_event_timestamp, last_event_timestamp, total_revenue "
            "FROM session_metrics WHERE session_id = $1",
            batches[0].session_id,
        )
        assert row is not None
        return row
    finally:
        await conn.close()


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(instants=st.lists(_INSTANTS, min_size=4, max_size=4), revenues=st.tuples(_REVENUE, _REVENUE))
def test_instants_and_revenue_come_back_exactly(
    migrated_dsn: str, instants: list[datetime], revenues: tuple[Decimal, Decimal]
) -> None:
    session_id = next(_IDS)
    one = a_session(session_id, min(instants[:2]), max(instants[:2]), revenues[0])
    two = a_session(session_id, min(instants[2:]), max(instants[2:]), revenues[1])
    stored = asyncio.run(_upserted(migrated_dsn, one, two))
    assert stored["first_event_timestamp"] == min(instants)
    assert stored["last_event_timestamp"] == max(instants)
    assert stored["total_revenue"] == revenues[0] + revenues[1]


async def test_a_session_inserted_meanwhile_is_retried_then_merged(migrated_dsn: str) -> None:
    # Two transactions write one new session (a producer keyed it onto two
    # partitions, owned by two replicas): the second waits for the first's
    # insert, fails on the key, and its retry merges into the stored row.
    at = datetime(2026, 1, 1, tzinfo=UTC)
    one = a_session("raced", at, at, Decimal("1.50"))
    two = a_session("raced", at + timedelta(seconds=1), at + timedelta(seconds=1), Decimal("2.25"))
    first = await asyncpg.connect(migrated_dsn)
    second = await asyncpg.connect(migrated_dsn)
    try:
        async with first.transaction():
            await batch_writes.upsert_sessions(first, session_rows([one]))
            waiting = asyncio.ensure_future(_in_transaction(second, two))
            # The second transaction's insert waits on the first's uncommitted row.
            await _until_waiting(first, second)
        with pytest.raises(asyncpg.UniqueViolationError) as raced:
            await waiting
        assert verdict(raced.value) is Verdict.RETRY
        await _in_transaction(second, two)  # the retry
        row = await first.fetchrow(
            "SELECT total_events, total_revenue, last_event_timestamp FROM session_metrics "
            "WHERE session_id = 'raced'"
        )
    finally:
        await first.close()
        await second.close()
    assert row is not None
    assert (row["total_events"], row["total_revenue"]) == (2, Decimal("3.75"))
    assert row["last_event_timestamp"] == at + timedelta(seconds=1)


async def _in_transaction(conn: asyncpg.Connection, session: SessionAggregate) -> None:
    async with conn.transaction():
        await batch_writes.upsert_sessions(conn, session_rows([session]))


async def _until_waiting(observer: asyncpg.Connection, waiter: asyncpg.Connection) -> None:
    """Until ``waiter``'s backend waits on a lock (asked through ``observer``)."""
    pid = waiter.get_server_pid()

    async def waiting() -> bool:
        return bool(
            await observer.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            )
        )

    await until("the second transaction waits on the first's row", waiting, timeout=60)
