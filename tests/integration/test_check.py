"""clickstream-check against the real broker and PostgreSQL: OK lines, causes of failure."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from clickstream_aggregator.migrate import migrate
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_ops.check.main import exit_status, line, run_checks
from clickstream_ops.check.results import Result, Verdict
from clickstream_ops.check.settings import load_all

pytestmark = pytest.mark.integration

_PREFIXES = ("KAFKA_", "POSTGRES_", "OPENSEARCH_")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Only what a test sets: no pipeline variables from the shell, no .env file."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith(_PREFIXES):
            monkeypatch.delenv(name)
    return monkeypatch


def by_step(results: list[Result], service: str) -> dict[str, Result]:
    return {r.step: r for r in results if r.service == service}


def verdicts(results: list[Result], service: str) -> dict[str, Verdict]:
    return {step: r.verdict for step, r in by_step(results, service).items()}


async def test_everything_ok_on_the_real_servers(
    environment: pytest.MonkeyPatch, service_env: dict[str, str], database: Database,
    topics: KafkaTopics,
) -> None:  # fmt: skip
    conn = await asyncpg.connect(database.dsn)
    applied = await migrate(conn)
    await conn.close()
    for name, value in service_env.items():
        environment.setenv(name, value)

    results = await run_checks(load_all(), 5.0)

    printed = "\n".join(line(r) for r in results)
    assert verdicts(results, "kafka") == {
        "settings": Verdict.OK, "certificates": Verdict.SKIP, "dns": Verdict.OK,
        "tcp": Verdict.OK, "tls": Verdict.SKIP, "auth": Verdict.OK, "topics": Verdict.OK,
        "group": Verdict.OK, "lag": Verdict.OK,
    }, printed  # fmt: skip
    kafka = by_step(results, "kafka")
    assert f"{topics.events}: 6 partition(s)" in kafka["topics"].detail
    assert topics.group in kafka["group"].detail
    assert verdicts(results, "postgres") == {
        "settings": Verdict.OK, "certificates": Verdict.SKIP, "dns": Verdict.OK,
        "tcp": Verdict.OK, "tls": Verdict.SKIP, "auth": Verdict.OK, "schema": Verdict.OK,
        "dead_letters": Verdict.OK, "counting": Verdict.SKIP,
    }, printed  # fmt: skip
    assert "has applied nothing" in by_step(results, "postgres")["counting"].detail
    latest = applied[-1][:4]
    assert by_step(results, "postgres")["schema"].detail == (
        f"session_metrics has 0 row(s); schema version {latest}"
    )
    for service in ("opensearch", "dashboards"):
        [result] = [r for r in results if r.service == service]
        assert result.verdict is Verdict.SKIP
        assert result.detail.startswith("not configured")
    assert exit_status(results) == 0


async def test_lag_comes_from_the_aggregators_offsets_table(
    environment: pytest.MonkeyPatch, service_env: dict[str, str], database: Database,
    topics: KafkaTopics,
) -> None:  # fmt: skip
    conn = await asyncpg.connect(database.dsn)
    await migrate(conn)
    await conn.executemany(
        "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) "
        "VALUES ($1, $2, $3, 0)",
        [(topics.group, topics.events, p) for p in range(topics.partitions)],
    )
    await conn.close()
    for name, value in service_env.items():
        environment.setenv(name, value)

    lag = by_step(await run_checks(load_all(), 5.0), "kafka")["lag"]

    assert lag.verdict is Verdict.OK
    assert lag.detail.endswith("from PostgreSQL consumer_offsets")
    assert lag.detail.startswith("0 message(s) behind")


async def _publish(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    """``counts[p]`` messages to partition ``p``, sent without waiting: batches of many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, b"{}", partition=p)
            for p, count in counts.items()
            for _ in range(count)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _store_offsets(dsn: str, topics: KafkaTopics, offsets: dict[int, int]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.executemany(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) "
            "VALUES ($1, $2, $3, $4)",
            [(topics.group, topics.events, p, o) for p, o in offsets.items()],
        )
    finally:
        await conn.close()


async def test_lag_counts_messages_sent_in_batches(
    environment: pytest.MonkeyPatch, service_env: dict[str, str], database: Database,
    topics: KafkaTopics, kafka: EmbeddedKafka,
) -> None:  # fmt: skip
    # Tansu's end_offsets() answers a batch's base offset + 1: the check must not believe it.
    await _publish(kafka.bootstrap, topics.events, {0: 300, 1: 20})
    await _store_offsets(database.dsn, topics, dict.fromkeys(range(topics.partitions), 0))
    for name, value in service_env.items():
        environment.setenv(name, value)

    lag = by_step(await run_checks(load_all(), 5.0), "kafka")["lag"]

    assert lag.verdict is Verdict.OK
    assert lag.detail == (
        "320 message(s) behind in total, most on partition 0 (300), "
        "from PostgreSQL consumer_offsets"
    )


async def test_a_stored_offset_beyond_the_log_end_fails_with_the_fix(
    environment: pytest.MonkeyPatch, service_env: dict[str, str], database: Database,
    topics: KafkaTopics, kafka: EmbeddedKafka,
) -> None:  # fmt: skip
    # As after the topic was recreated: PostgreSQL remembers offsets the new log never had.
    await _publish(kafka.bootstrap, topics.events, {0: 5})
    await _store_offsets(database.dsn, topics, {0: 500, 1: 0})
    for name, value in service_env.items():
        environment.setenv(name, value)

    results = await run_checks(load_all(), 5.0)

    lag = by_step(results, "kafka")["lag"]
    assert lag.verdict is Verdict.FAIL
    assert lag.detail == (
        "partition 0: stored offset 500 is beyond the log end 5, from PostgreSQL "
        "consumer_offsets: the aggregator will not consume this partition"
    )
    assert "topic was recreated" in lag.fix
    assert (
        f"UPDATE consumer_offsets SET next_offset = NULL WHERE group_id = '{topics.group}' "
        f"AND topic = '{topics.events}' AND partition IN (0)"
    ) in lag.fix
    assert exit_status(results) == 1


async def _dead_letters(dsn: str, ages_s: list[int], *, refused: int = 0) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        for offset, seconds in enumerate(ages_s):
            await conn.execute(
                "INSERT INTO dead_letters (source_topic, source_partition, source_offset, "
                "message_value, reason, error_class, error_message, created_at) "
                "VALUES ('events', 0, $1, 'x', 'invalid', 'ValueError', 'bad', "
                "now() - make_interval(secs => $2))",
                offset,
                float(seconds),
            )
        if refused:
            await conn.execute(
                "UPDATE dead_letters SET relay_attempts = 2, relay_error = 'MessageSizeTooLarge' "
                "WHERE source_offset < $1",
                refused,
            )
        # One already relayed long ago: not pending.
        await conn.execute(
            "INSERT INTO dead_letters (source_topic, source_partition, source_offset, "
            "message_value, reason, error_class, error_message, created_at, relayed_at) "
            "VALUES ('events', 1, 0, 'x', 'invalid', 'ValueError', 'bad', "
            "now() - interval '2 days', now() - interval '2 days')"
        )
    finally:
        await conn.close()


async def _has_relay_attempts(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'dead_letters' AND column_name = 'relay_attempts'"
            )
        )
    finally:
        await conn.close()


async def test_dead_letters_being_relayed_are_ok(
    environment: pytest.MonkeyPatch, database: Database,
) -> None:  # fmt: skip
    # Two minutes old (below the 5 min of "stuck"): the age shown stays "2 min" however
    # long the check takes to run, up to a minute (the seconds format has a unit test).
    await _dead_letters(database.dsn, [5, 120])
    for name, value in database.env.items():
        environment.setenv(name, value)

    result = by_step(await run_checks(load_all(), 5.0), "postgres")["dead_letters"]

    assert result.verdict is Verdict.OK
    assert result.detail.startswith("2 waiting to be copied to the dead-letter topic, oldest 2 min")


async def test_dead_letters_stuck_for_minutes_fail_with_count_and_age(
    environment: pytest.MonkeyPatch, database: Database,
) -> None:  # fmt: skip
    await _dead_letters(database.dsn, [10, 3 * 3600 + 120, 600])
    for name, value in database.env.items():
        environment.setenv(name, value)

    results = await run_checks(load_all(), 5.0)

    result = by_step(results, "postgres")["dead_letters"]
    assert result.verdict is Verdict.FAIL
    assert result.detail.startswith(
        "2 of 3 pending dead letter(s) not copied to the dead-letter topic for more than "
        "5 min, oldest 3 h 2 min"
    )
    assert "check that an aggregator runs" in result.fix
    assert exit_status(results) == 1


async def test_dead_letters_kafka_refused_say_how_to_release_them(
    environment: pytest.MonkeyPatch, database: Database,
) -> None:  # fmt: skip
    if not await _has_relay_attempts(database.dsn):
        pytest.skip("this schema has no relay_attempts column (migration 0005)")
    await _dead_letters(database.dsn, [900, 900, 900], refused=2)
    for name, value in database.env.items():
        environment.setenv(name, value)

    result = by_step(await run_checks(load_all(), 5.0), "postgres")["dead_letters"]

    assert result.verdict is Verdict.FAIL
    assert result.detail.endswith(
        "oldest 15 min; 2 refused by Kafka 2 times (last: MessageSizeTooLarge)"
    )
    assert "SET relay_attempts = 0 WHERE relayed_at IS NULL AND relay_attempts >= 2" in result.fix


def test_the_command_prints_nothing_but_its_results(
    service_env: dict[str, str], database: Database, tmp_path: Path,
) -> None:  # fmt: skip
    # Kafka's variable points at PostgreSQL: TCP connects, then aiokafka fails and logs
    # about it; none of that may reach the output.
    inherited = {k: v for k, v in os.environ.items() if not k.upper().startswith(_PREFIXES)}
    env = {
        **inherited,
        **database.env,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{database.env['POSTGRES_PORT']}",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from clickstream_ops.check.main import main; main()", "--json",
         "--timeout", "2"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.stderr == ""
    results = [json.loads(line) for line in done.stdout.splitlines()]
    auth = [r for r in results if (r["service"], r["step"]) == ("kafka", "auth")]
    assert auth[0]["verdict"] == "FAIL"
    assert done.returncode == 1


async def test_wrong_ports_fail_with_the_cause(
    environment: pytest.MonkeyPatch, service_env: dict[str, str], unused_tcp_port: int,
) -> None:  # fmt: skip
    for name, value in service_env.items():
        environment.setenv(name, value)
    environment.setenv("POSTGRES_PORT", str(unused_tcp_port))
    environment.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{unused_tcp_port}")

    results = await run_checks(load_all(), 5.0)

    for service, variable in (("kafka", "KAFKA_BOOTSTRAP_SERVERS"), ("postgres", "POSTGRES_PORT")):
        tcp = by_step(results, service)["tcp"]
        assert tcp.verdict is Verdict.FAIL
        assert "refused the connection" in tcp.detail
        assert variable in tcp.fix
        assert by_step(results, service)["auth"].detail == "not checked: tcp failed"
    assert exit_status(results) == 1


async def test_wrong_password_fails_at_login(
    environment: pytest.MonkeyPatch, guarded_postgres: EmbeddedPostgres,
) -> None:  # fmt: skip
    for name, value in guarded_postgres.env("postgres").items():
        environment.setenv(name, value)
    environment.setenv("POSTGRES_PASSWORD", "wrong-password")

    results = await run_checks(load_all(), 5.0)

    auth = by_step(results, "postgres")["auth"]
    assert auth.verdict is Verdict.FAIL
    assert "password authentication failed" in auth.detail
    assert "POSTGRES_PASSWORD" in auth.fix
    assert "wrong-password" not in "\n".join(line(r) for r in results)
    assert by_step(results, "kafka")["settings"].detail.startswith(
        "KAFKA_BOOTSTRAP_SERVERS is not set"
    )
    assert exit_status(results) == 1


async def test_missing_schema_says_to_start_the_aggregator(
    environment: pytest.MonkeyPatch, database: Database,
) -> None:  # fmt: skip
    for name, value in database.env.items():
        environment.setenv(name, value)

    schema = by_step(await run_checks(load_all(), 5.0), "postgres")["schema"]

    assert schema.verdict is Verdict.FAIL
    assert "session_metrics does not exist" in schema.detail
    assert "clickstream-aggregator" in schema.fix
