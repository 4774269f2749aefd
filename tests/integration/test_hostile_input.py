"""Named regressions: messages that once stopped a replica, end to end.

Each test runs the real aggregator loop against the embedded broker and
PostgreSQL and checks the promise for every message of its topic: applied once
(session rows exact against the reference) or dead-lettered once with the
reason the contract gives, while the replica keeps running.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_schema import decode
from clickstream_schema.fields import IpAddress, Timestamp
from support.aggregator import running_aggregator, settings_from_env, wait_applied
from support.feed import Message, as_messages, generate, publish, read_back
from support.hostile import BASE, ip_addresses, nested, timestamps, wire
from support.reference import (
    MAX_SEARCH_QUERIES,
    MAX_TOTAL_REVENUE,
    differences,
    rows_of,
    settle,
    stored_dead_letters,
    stored_rows,
)

pytestmark = pytest.mark.integration


def _event(session_id: str, **changes: Any) -> dict[str, Any]:
    return {**BASE, "event_id": str(uuid.uuid4()), "session_id": session_id, **changes}


def _message(event: dict[str, Any]) -> Message:
    return event["session_id"].encode(), wire(event)


async def _run(
    kafka: EmbeddedKafka,
    topics: KafkaTopics,
    database: Database,
    env: dict[str, str],
    messages: list[Message],
    *,
    total: int | None = None,
) -> None:
    """Publish, apply everything with one replica, and check it is still running."""
    await publish(kafka.bootstrap, topics.events, messages)
    async with running_aggregator(settings_from_env(env)) as task:
        await wait_applied(
            database.dsn,
            topics.group,
            topics.events,
            total if total is not None else len(messages),
            running=task,
        )
        await asyncio.sleep(0)  # let a failure that raced the last commit surface
        assert not task.done(), "the aggregator stopped"


async def _assert_settled(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database
) -> dict[tuple[int, int], str]:
    """Every message applied once or dead-lettered once, exactly as the reference says."""
    messages = await read_back(kafka.bootstrap, topics.events, topics.partitions)
    expected = settle(messages)
    dead = await stored_dead_letters(database.dsn, topics.events)
    assert dead == expected.dead_letters
    assert differences(rows_of(expected.applied), await stored_rows(database.dsn)) == []
    return dead


async def test_ten_kilobytes_of_nested_arrays_are_dead_lettered_and_the_replica_goes_on(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    good = as_messages(generate(300, seed=21))
    poison: list[Message] = [
        (b"nested", nested(5_000)),
        (b"nested-objects", nested(3_000, arrays=False)),
    ]
    await _run(kafka, topics, database, service_env, good[:150] + poison + good[150:])

    dead = await _assert_settled(kafka, topics, database)
    assert sorted(dead.values()) == ["not_json", "not_json"]


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_a_timestamp_postgresql_cannot_store_is_dead_lettered(
    kafka: EmbeddedKafka,
    topics: KafkaTopics,
    database: Database,
    service_env: dict[str, str],
    timestamp: str,
) -> None:
    # Once: accepted by the model, then asyncpg raised DataError inside the batch
    # upsert and the replica stopped (exit 1), on every replica in turn.
    good = as_messages(generate(200, seed=22))
    session = "s-clock-broken"
    bad = [_message(_event(session, timestamp=timestamp))]
    fine = [_message(_event(session, timestamp="2026-11-01T09:00:00Z"))]
    await _run(kafka, topics, database, service_env, good[:100] + bad + fine + good[100:])

    dead = await _assert_settled(kafka, topics, database)
    assert list(dead.values()) == ["schema"]
    stored = await stored_rows(database.dsn)
    assert stored[session]["total_events"] == 1


async def test_the_purchase_that_overflows_total_revenue_is_unstorable_and_the_rest_applies(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    """NUMERIC(14,2) holds 999,999,999,999.99; prices are at most 1,000,000.00, so
    an honest overflow takes a million maximum purchases. The session's stored
    total is therefore set just below the limit in PostgreSQL; the overflowing
    purchase then arrives through the whole path like any other message."""
    session = "s-big-spender"
    first = [_message(_event(session, event_type="purchase", price=1_000_000))]
    await _run(kafka, topics, database, service_env, first)
    seeded = MAX_TOTAL_REVENUE - Decimal("1000000.98")
    conn = await asyncpg.connect(database.dsn)
    try:
        await conn.execute(
            "UPDATE session_metrics SET total_revenue = $1 WHERE session_id = $2", seeded, session
        )
    finally:
        await conn.close()

    fits = _event(session, event_type="purchase", price=999_999.99)  # total: MAX - 0.99
    tips = _event(session, event_type="purchase", price=1.00)  # total: MAX + 0.01
    after = _event(session, event_type="page_view", page_url="https://shop.example.com/thanks")
    others = as_messages(generate(300, seed=23))
    later = [_message(fits), _message(tips), _message(after)]
    await _run(
        kafka,
        topics,
        database,
        service_env,
        others[:150] + later + others[150:],
        total=len(first) + len(others) + len(later),
    )

    dead = await stored_dead_letters(database.dsn, topics.events)
    assert list(dead.values()) == ["unstorable"]
    tipping = list(dead)
    messages = await read_back(kafka.bootstrap, topics.events, topics.partitions)
    (value,) = [v for p, o, _k, v in messages if (p, o) == tipping[0]]
    assert decode(value).event_id == uuid.UUID(tips["event_id"])

    stored = await stored_rows(database.dsn)
    row = stored[session]
    assert row["total_revenue"] == MAX_TOTAL_REVENUE - Decimal("0.99")
    assert row["total_events"] == 3  # the first purchase, the one that fits, the page view
    assert row["event_type_counts"] == {"purchase": 2, "page_view": 1}
    assert row["exit_page"] == "https://shop.example.com/thanks"
    # Every other session is exact.
    expected = settle(m for m in messages if m[2] != session.encode())
    assert (
        differences(rows_of(expected.applied), {s: r for s, r in stored.items() if s != session})
        == []
    )


async def test_a_session_with_more_than_a_hundred_searches_keeps_the_first_hundred(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    session = "s-search-bot"
    searches = [
        _event(
            session,
            event_type="search",
            search_query=f"query {i:03d}",
            timestamp=f"2026-11-01T09:{i // 60:02d}:{i % 60:02d}Z",
        )
        for i in range(150)
    ]
    good = as_messages(generate(200, seed=24))
    await _run(
        kafka,
        topics,
        database,
        service_env,
        good[:100] + [_message(e) for e in searches] + good[100:],
    )

    await _assert_settled(kafka, topics, database)
    row = (await stored_rows(database.dsn))[session]
    assert row["search_queries"] == [f"query {i:03d}" for i in range(MAX_SEARCH_QUERIES)]
    assert row["event_type_counts"] == {"search": 150}
    assert row["total_events"] == 150


_ADDRESS = TypeAdapter(IpAddress)
_TIME = TypeAdapter(Timestamp)
#: Real addresses in every accepted form, and strings that look like addresses.
_ADDRESS_LIKE = st.one_of(
    ip_addresses(), st.text(alphabet="0123456789abcdefABCDEF:./% ", min_size=1, max_size=45)
)


def _accepted_addresses(candidates: list[str]) -> list[str]:
    accepted = []
    for candidate in candidates:
        try:
            accepted.append(_ADDRESS.validate_json(json.dumps(candidate)))
        except ValidationError:
            continue
    return accepted


@settings(max_examples=25, deadline=None)
@given(
    candidates=st.lists(_ADDRESS_LIKE, min_size=1, max_size=100),
    times=st.lists(timestamps(), min_size=1, max_size=50),
)
def test_every_address_and_time_the_model_accepts_postgresql_holds(
    postgres: EmbeddedPostgres, candidates: list[str], times: list[str]
) -> None:
    """The aggregator sends addresses as text cast to inet, times as timestamptz."""
    addresses = _accepted_addresses(candidates)
    instants = [_TIME.validate_json(json.dumps(t)) for t in times]

    async def store() -> None:
        conn = await asyncpg.connect(postgres.dsn())
        try:
            stored = await conn.fetch(
                "SELECT a::inet AS address FROM unnest($1::text[]) AS a", addresses
            )
            assert len(stored) == len(addresses)
            back = await conn.fetchval("SELECT $1::timestamptz[]", instants)
            assert back == instants  # the same instants (aware datetimes compare as such)
        finally:
            await conn.close()

    asyncio.run(store())
