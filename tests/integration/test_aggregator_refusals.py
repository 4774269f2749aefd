"""PostgreSQL answered and refused: the aggregator says so at once, in one line with the fix.

It once waited out AGGREGATOR_STARTUP_TIMEOUT_S and then said "did not answer within
0s: InvalidPasswordError" (or "within 10s" after 6 ms), with a 434-line traceback
on a terminal. Each refusal here (a password, a database, TLS the server does not
offer) must end the start before a single retry.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from clickstream_aggregator.main import run
from clickstream_aggregator.startup import StartupRefused
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from support.aggregator import settings_from_env
from support.scripts import run_script


@pytest.mark.parametrize(
    ("change", "said", "fix"),
    [
        ({"POSTGRES_PASSWORD": "wrong-password"}, "refused the login of", "POSTGRES_PASSWORD"),
        ({"POSTGRES_DATABASE": "no_such_db"}, '"no_such_db" does not exist', "POSTGRES_DATABASE"),
        ({"POSTGRES_SSLMODE": "require"}, "offers no TLS", "POSTGRES_SSLMODE=prefer"),
    ],
)
async def test_a_refusal_is_one_line_at_once(
    guarded_postgres: EmbeddedPostgres,
    service_env: dict[str, str],
    change: dict[str, str],
    said: str,
    fix: str,
) -> None:
    env = {**service_env, **guarded_postgres.env(), "POSTGRES_PASSWORD": "right-password"}
    env.update(change)
    # Ten minutes of patience: a refusal must not use any of it.
    settings = settings_from_env(env, aggregator_startup_timeout_s=600, metrics_port=0)
    with capture_logs() as logged, pytest.raises(StartupRefused) as refused:
        await asyncio.wait_for(run(settings, asyncio.Event()), timeout=60)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"PostgreSQL at {guarded_postgres.host}:{guarded_postgres.port} ")
    assert said in message, message
    assert fix in message, message
    assert "did not answer" not in message
    assert "wrong-password" not in message
    assert not [e for e in logged if e["event"] == "postgres_connect_retry"]


def test_the_command_prints_it_without_a_traceback(
    guarded_postgres: EmbeddedPostgres, service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**service_env, **guarded_postgres.env(), "POSTGRES_PASSWORD": "wrong-password"}
    result = run_script(
        "clickstream-aggregator",
        env={**env, "METRICS_PORT": "0", "LOG_FORMAT": "console"},
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    failed = [line for line in output.splitlines() if "service_failed" in line]
    assert len(failed) == 1, output
    assert "refused the login of postgres: password authentication failed" in failed[0]
    assert "Traceback" not in output
