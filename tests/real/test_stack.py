"""``clickstream-stack --real``: Apache Kafka, Kafka Connect, OpenSearch and PostgreSQL.

Started as a person starts it, with one broker and with the three-node cluster
(``--brokers 3``); the exported variables reach every server, the printed
command line of Kafka's topic tool runs as pasted, and Ctrl-C (SIGINT) stops
all of them: no process of the stack is left behind.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from clickstream_devstack.services import script_path
from support.private_dirs import private_dir

START_TIMEOUT_S = 300.0


@pytest.fixture
def stack_dir(java_available: None) -> Iterator[Path]:
    # Not under pytest's basetemp: OpenSearch and PostgreSQL run as other accounts.
    with private_dir("clickstream-stack-") as root:
        yield root / "stack"


def _exports(env_file: Path) -> dict[str, str]:
    variables = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            variables[name] = shlex.split(value)[0] if value else ""
    return variables


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


async def _round_trip(bootstrap: str, topic: str) -> bytes | None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"from-the-stack", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return (await asyncio.wait_for(consumer.getone(), timeout=30)).value
    finally:
        await consumer.stop()


def _printed_command(output: str, tool_class: str) -> str:
    """The command line the stack printed for ``tool_class``."""
    return next(line for line in output.splitlines() if f" {tool_class} " in line)


@pytest.mark.parametrize("brokers", [1, 3])
def test_stack_real_serves_every_server_and_ctrl_c_stops_them_all(
    stack_dir: Path, brokers: int
) -> None:
    log_path = stack_dir.parent / "stack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(script_path("clickstream-stack")),
                "--real",
                "--brokers",
                str(brokers),
                "--dir",
                str(stack_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        env_file = stack_dir / "env"
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ctrl-C stops" not in log_path.read_text(errors="replace"):
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the stack did not come up"
            time.sleep(0.5)
        exports = _exports(env_file)
        children = psutil.Process(process.pid).children(recursive=True)
        connect_url = next(
            line.split(": ", 1)[1]
            for line in env_file.read_text().splitlines()
            if line.startswith("# Kafka Connect REST API: ")
        )

        received = asyncio.run(
            _round_trip(exports["KAFKA_BOOTSTRAP_SERVERS"], exports["KAFKA_TOPIC"])
        )
        assert received == b"from-the-stack"
        assert len(exports["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == brokers
        # Kafka's topic tool, pasted as printed: every partition on `brokers` replicas.
        topics_tool = _printed_command(
            log_path.read_text(errors="replace"), "org.apache.kafka.tools.TopicCommand"
        )
        described = subprocess.run(
            topics_tool, shell=True, capture_output=True, text=True, check=False, timeout=120
        )
        assert described.returncode == 0, described.stderr
        assert f"ReplicationFactor: {brokers}" in described.stdout, described.stdout
        if brokers == 3:
            assert "min.insync.replicas=2" in described.stdout, described.stdout
            assert exports["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert _get(exports["OPENSEARCH_URI"])["version"]["distribution"] == "opensearch"
        assert "version" in _get(connect_url)
        dsn = (
            f"postgresql://{exports['POSTGRES_USER']}@{exports['POSTGRES_HOST']}:"
            f"{exports['POSTGRES_PORT']}/{exports['POSTGRES_DATABASE']}"
        )

        async def query() -> object:
            conn = await asyncpg.connect(dsn)
            try:
                return await conn.fetchval("SELECT 1")
            finally:
                await conn.close()

        assert asyncio.run(query()) == 1
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log_path.read_text(errors="replace")[-3000:]
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], [p.cmdline()[:3] for p in alive]
