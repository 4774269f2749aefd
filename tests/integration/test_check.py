"""clickstream-check against the real broker and PostgreSQL: OK lines, causes of failure."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from clickstream_aggregator.migrate import migrate
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.postgres import EmbeddedPostgres
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


@pytest.fixture(scope="module")
def guarded_postgres() -> Iterator[EmbeddedPostgres]:
    """A server that checks passwords (the session's one trusts every login)."""
    root = Path(tempfile.mkdtemp(prefix="clickstream-check-pg-"))
    server = EmbeddedPostgres(root / "data", password="right-password", durable=False)
    try:
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


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
    }, printed  # fmt: skip
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
    assert by_step(results, "kafka")["settings"].detail.startswith("not configured")
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
