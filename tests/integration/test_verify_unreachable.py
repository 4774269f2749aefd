"""clickstream-verify against a Kafka port nobody listens on: one line, exit 2, nothing else."""

from __future__ import annotations

import socket
from pathlib import Path

from clickstream_devstack.environment import Database
from support.scripts import run_script


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_wrong_kafka_port_is_one_line_without_an_unclosed_consumer(
    database: Database, service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **service_env,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}",
        "PYTHONWARNINGS": "default",  # a ResourceWarning would be printed
    }
    result = run_script("clickstream-verify", env=env, cwd=tmp_path, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "cannot verify" in output
    assert "Unclosed" not in output, output
