"""``clickstream-verify`` against a real aggregator's output, clean and tampered with.

One topic of seeded traffic (duplicates, poison of every kind, late events) is
aggregated once by the real aggregator; every test then works on its own copy
of that database (``CREATE DATABASE … TEMPLATE``), changes it the way a bug
would, and runs the command as an operator does.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from clickstream_devstack.environment import Database, KafkaTopics, create_topics, service_env
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_ops.verify.run import verify
from clickstream_ops.verify.settings import VerifySettings
from support.aggregator import running_aggregator, settings_from_env, wait_applied, wait_relayed
from support.database import execute, fetch
from support.dataset import MAX_BYTES, Dataset, build
from support.feed import publish, read_back, valid_events
from support.reference import expected_rows
from support.scripts import run_script

EVENTS = 4000


@dataclass(frozen=True)
class Aggregated:
    topics: KafkaTopics
    template: str
    data: Dataset
    total: int
    sessions: int


@pytest.fixture(scope="module")
def aggregated(kafka: EmbeddedKafka, postgres: EmbeddedPostgres) -> Iterator[Aggregated]:
    topics = KafkaTopics.unique(prefix="verify")
    create_topics(kafka, topics)
    template = f"verify_{uuid.uuid4().hex[:10]}"
    postgres.create_database(template)
    database = Database.on(postgres, template)
    data = build(EVENTS, seed=31)
    env = service_env(kafka, topics, database, AGGREGATOR_MAX_MESSAGE_BYTES=MAX_BYTES)

    async def fill_and_aggregate() -> int:
        await publish(kafka.bootstrap, topics.events, data.messages)
        messages = await read_back(kafka.bootstrap, topics.events, topics.partitions)
        async with running_aggregator(settings_from_env(env)) as task:
            await wait_applied(
                database.dsn, topics.group, topics.events, len(messages), running=task
            )
            await wait_relayed(database.dsn, timeout=60, running=task)
        return len(expected_rows(valid_events(messages)))

    sessions = asyncio.run(fill_and_aggregate())
    yield Aggregated(topics, template, data, len(data.messages), sessions)
    postgres.drop_database(template)


@pytest.fixture
def copy(postgres: EmbeddedPostgres, aggregated: Aggregated) -> Iterator[Database]:
    """This test's own copy of the aggregated database."""
    name = f"verify_{uuid.uuid4().hex[:10]}"
    postgres.psql(f'CREATE DATABASE "{name}" TEMPLATE "{aggregated.template}"')
    yield Database.on(postgres, name)
    postgres.drop_database(name)


def _env(kafka: EmbeddedKafka, aggregated: Aggregated, database: Database) -> dict[str, str]:
    return service_env(kafka, aggregated.topics, database, AGGREGATOR_MAX_MESSAGE_BYTES=MAX_BYTES)


def _run_command(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_script(
        "clickstream-verify", *args, env={**env, "COLUMNS": "200"}, cwd=cwd, timeout=180
    )  # cwd: no .env here


async def test_a_clean_run_matches_and_counts_every_message(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database
) -> None:
    env = _env(kafka, aggregated, copy)
    fields = VerifySettings.model_fields
    settings = VerifySettings.model_validate(
        {k.lower(): v for k, v in env.items() if k.lower() in fields}
    )
    seen: list[tuple[int, int]] = []

    report = await verify(settings, progress=lambda done, total: seen.append((done, total)))

    assert report.ok, report.as_json()
    assert report.exact
    counts = report.counts
    assert counts.messages == aggregated.total
    assert counts.dead_lettered == len(aggregated.data.poison)
    assert counts.deduplicated == aggregated.data.duplicates
    assert counts.applied + counts.deduplicated + counts.dead_lettered == counts.messages
    assert counts.sessions_expected == counts.sessions_stored == aggregated.sessions
    assert counts.dead_letter_copies == counts.dead_letter_rows == len(aggregated.data.poison)
    assert seen[-1] == (aggregated.total, aggregated.total)


def test_the_command_exits_0_and_says_so(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database, tmp_path: Path
) -> None:
    result = _run_command(_env(kafka, aggregated, copy), tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 lost, 0 counted twice" in result.stdout


async def test_a_tampered_row_is_a_difference_with_an_example(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database, tmp_path: Path
) -> None:
    victim = await _one_session(copy.dsn)
    await execute(
        copy.dsn,
        f"UPDATE session_metrics SET total_events = total_events + 2, "
        f"page_view_count = page_view_count + 2 WHERE session_id = '{victim}'",
    )

    result = _run_command(_env(kafka, aggregated, copy), tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 lost, 2 counted twice, 1 session that differs" in result.stdout
    assert f"{victim}: total_events expected" in result.stdout


async def test_a_deleted_row_is_reported_missing(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database, tmp_path: Path
) -> None:
    victim = await _one_session(copy.dsn)
    events = await _scalar(
        copy.dsn, f"SELECT total_events FROM session_metrics WHERE session_id = '{victim}'"
    )
    await execute(copy.dsn, f"DELETE FROM session_metrics WHERE session_id = '{victim}'")

    result = _run_command(_env(kafka, aggregated, copy), tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"{events} lost, 0 counted twice, 1 session missing from session_metrics" in result.stdout
    )
    assert f"{victim} ({events} events)" in result.stdout


async def test_an_extra_row_is_reported(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database, tmp_path: Path
) -> None:
    victim = await _one_session(copy.dsn)
    await execute(
        copy.dsn,
        "CREATE TEMP TABLE t AS SELECT * FROM session_metrics WHERE session_id = "
        f"'{victim}'; UPDATE t SET session_id = 'invented-session'; "
        "INSERT INTO session_metrics (session_id, user_id, total_events, first_event_timestamp, "
        "last_event_timestamp, unique_pages, total_revenue, products_viewed, search_queries, "
        "referrers, user_agent, ip_address, entry_page, exit_page, page_view_count, device_type) "
        "SELECT session_id, user_id, total_events, first_event_timestamp, last_event_timestamp, "
        "unique_pages, total_revenue, products_viewed, search_queries, referrers, user_agent, "
        "ip_address, entry_page, exit_page, page_view_count, device_type FROM t",
    )

    result = _run_command(_env(kafka, aggregated, copy), tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 session in session_metrics with no event on the topic" in result.stdout
    assert "invented-session" in result.stdout


async def test_a_missing_dead_letter_is_reported(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database, tmp_path: Path
) -> None:
    row = await execute(
        copy.dsn,
        "DELETE FROM dead_letters WHERE id = (SELECT min(id) FROM dead_letters)",
    )
    assert row == "DELETE 1"

    result = _run_command(_env(kafka, aggregated, copy), tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 invalid message with no dead_letters row" in result.stdout
    # Its copy on the dead-letter topic now has no row either.
    assert "1 dead-letter copy with no dead_letters row" in result.stdout
    assert "0 lost, 0 counted twice" in result.stdout


async def test_a_time_range_proves_losses_but_not_double_counts(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database, tmp_path: Path
) -> None:
    """With --since the check is one-sided (README): a stored session may hold events
    from outside the range, so only what the range holds and the table lacks is proof."""
    deleted, inflated = await _two_sessions(copy.dsn)
    await execute(copy.dsn, f"DELETE FROM session_metrics WHERE session_id = '{deleted}'")
    await execute(
        copy.dsn,
        "UPDATE session_metrics SET total_events = total_events + 2, "
        f"page_view_count = page_view_count + 2 WHERE session_id = '{inflated}'",
    )

    result = _run_command(
        _env(kafka, aggregated, copy), tmp_path, "--since", "2000-01-01T00:00:00+00:00"
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 session missing from session_metrics" in result.stdout
    assert "(partial)" in result.stdout
    assert inflated not in result.stdout  # more than the range holds: not a proof


async def test_nothing_in_the_range_is_nothing_to_disprove(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database, tmp_path: Path
) -> None:
    result = _run_command(
        _env(kafka, aggregated, copy), tmp_path, "--json", "--since", "2999-01-01T00:00:00Z"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["exact"] is False
    assert report["counts"]["messages"] == 0
    assert report["counts"]["sessions_outside"] == aggregated.sessions


async def _two_sessions(dsn: str) -> tuple[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT session_id FROM session_metrics WHERE total_events > 3 "
            "ORDER BY session_id LIMIT 2"
        )
    finally:
        await conn.close()
    return str(rows[0]["session_id"]), str(rows[1]["session_id"])


async def _one_session(dsn: str) -> str:
    return str(
        await _scalar(
            dsn,
            "SELECT session_id FROM session_metrics WHERE total_events > 3 "
            "ORDER BY session_id LIMIT 1",
        )
    )


async def _scalar(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_a_deployment_it_cannot_reach_is_exit_2_not_a_difference(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "1",
        "POSTGRES_CONNECT_TIMEOUT_S": "2",
    }
    result = _run_command(env, tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot verify:" in result.stdout


def test_bad_settings_are_exit_2_and_named(tmp_path: Path) -> None:
    result = _run_command({"KAFKA_BOOTSTRAP_SERVERS": "https://broker"}, tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS" in result.stdout


async def _lone_event(
    kafka: EmbeddedKafka, aggregated: Aggregated, dsn: str
) -> tuple[str, int, int]:
    """A session of one event that is on the topic once: (session, partition, offset)."""
    singles = {
        str(r["session_id"])
        for r in await fetch(dsn, "SELECT session_id FROM session_metrics WHERE total_events = 1")
    }
    messages = await read_back(
        kafka.bootstrap, aggregated.topics.events, aggregated.topics.partitions
    )
    by_key: dict[str, list[tuple[int, int]]] = {}
    for partition, offset, key, _value in messages:
        if key is not None:
            by_key.setdefault(key.decode(errors="replace"), []).append((partition, offset))
    session = sorted(s for s in singles if len(by_key.get(s, [])) == 1)[0]
    partition, offset = by_key[session][0]
    return session, partition, offset


async def test_unstorable_and_decoder_killing_messages_are_dead_letters_not_losses(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database, tmp_path: Path
) -> None:
    """As if PostgreSQL had refused the only event of a session: no row, one dead letter
    (not relayed yet). Recorded as any other reason, it is a valid event dead-lettered."""
    session, partition, offset = await _lone_event(kafka, aggregated, copy.dsn)
    record = (
        "INSERT INTO dead_letters (source_topic, source_partition, source_offset, reason, "
        f"error_class, error_message) VALUES ('{aggregated.topics.events}', {partition}, "
        f"{offset}, '{{reason}}', 'NumericValueOutOfRange', 'numeric field overflow')"
    )
    await execute(copy.dsn, f"DELETE FROM session_metrics WHERE session_id = '{session}'")
    await execute(copy.dsn, record.format(reason="unstorable"))

    result = _run_command(_env(kafka, aggregated, copy), tmp_path, "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert counts["unstorable"] == 1
    assert counts["dead_lettered"] == len(aggregated.data.poison) + 1
    assert counts["dead_letters_pending_relay"] == 1

    # A message that killed the aggregator's decode worker is counted, not decoded.
    await execute(copy.dsn, "DELETE FROM dead_letters WHERE reason = 'unstorable'")
    await execute(copy.dsn, record.format(reason="crashed_decoder"))
    result = _run_command(_env(kafka, aggregated, copy), tmp_path, "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert counts["crashed_decoder"] == 1
    assert counts["unstorable"] == 0
    assert counts["dead_lettered"] == len(aggregated.data.poison) + 1

    await execute(copy.dsn, "DELETE FROM dead_letters WHERE reason = 'crashed_decoder'")
    await execute(copy.dsn, record.format(reason="schema"))
    result = _run_command(_env(kafka, aggregated, copy), tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 valid event dead-lettered" in result.stdout
    assert f"partition {partition} offset {offset} (schema)" in result.stdout


def test_another_group_is_named_instead_of_a_false_alarm(
    kafka: EmbeddedKafka, aggregated: Aggregated, copy: Database, tmp_path: Path
) -> None:
    env = {**_env(kafka, aggregated, copy), "KAFKA_GROUP_ID": "not-the-aggregators"}

    result = _run_command(env, tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "is KAFKA_GROUP_ID the aggregator's?" in result.stdout
    assert aggregated.topics.group in result.stdout
