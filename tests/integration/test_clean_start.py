"""A normal start and run writes no error-level line, library lines included.

Every aggregator start on the embedded broker once logged aiokafka's
``Unexpected error during InitProducerIdRequest: UnknownError`` (the relay's
transactional producer meeting a broker without transactions), and Apache Kafka
starts logged ``GroupCoordinatorNotAvailableError`` at error level while the
offsets topic was being created. Runs here on the embedded broker and, from
``tests/real``, on Apache Kafka.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import orjson
import pytest

from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.services import ServiceGroup
from clickstream_producer.kafka_connect import IdempotenceUnavailable, connect
from clickstream_producer.metrics import ProducerMetrics
from clickstream_producer.settings import ProducerSettings
from clickstream_runtime.settings import load
from support.aggregator import applied_offsets
from support.design_producer import design_messages, publish
from support.scripts import run_script


async def _until(what: str, check: object, services: ServiceGroup, timeout: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[operator]
        services.check_running()
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.2)


async def test_a_normal_run_has_no_error_line(
    topics: KafkaTopics, database: Database, service_env: dict[str, str], services: ServiceGroup
) -> None:
    messages = [*design_messages(200, seed=29), (b"user_x", b"not json")]
    await publish(service_env["KAFKA_BOOTSTRAP_SERVERS"], topics.events, messages)
    aggregator = services.launch(
        "clickstream-aggregator", env={**service_env, "LOG_FORMAT": "json", "LOG_LEVEL": "info"}
    )

    async def applied() -> bool:
        return await applied_offsets(database.dsn, topics.group, topics.events) >= len(messages)

    async def relayed() -> bool:
        conn = await asyncpg.connect(database.dsn)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM dead_letters WHERE relayed_at IS NOT NULL"
                )
            )
        finally:
            await conn.close()

    await _until("aggregator applied the topic", applied, services)
    await _until("the dead letter was relayed", relayed, services)
    assert services.stop(aggregator) == 0

    lines = _json_lines(Path(aggregator.log_path))
    assert "batch_committed" in [e["event"] for e in lines]
    errors = [e for e in lines if e.get("level") in ("error", "critical")]
    assert errors == []


def _json_lines(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.tansu_only("its subject is a broker without idempotence (Apache Kafka has it)")
async def test_idempotence_on_a_broker_without_it_says_so_and_what_to_set(
    kafka: EmbeddedKafka, topics: KafkaTopics
) -> None:
    settings = load(
        ProducerSettings,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_topic=topics.events,
        kafka_enable_idempotence=True,
        kafka_acks="all",
        metrics_port=0,
    )
    with pytest.raises(IdempotenceUnavailable) as refused:
        await asyncio.wait_for(
            connect(settings, asyncio.Event(), ProducerMetrics.create().readiness), timeout=60
        )
    message = str(refused.value)
    assert "cannot do idempotence" in message
    assert "KAFKA_ENABLE_IDEMPOTENCE=false" in message


@pytest.mark.tansu_only("its subject is a broker without idempotence (Apache Kafka has it)")
def test_the_producer_command_says_it_in_one_line(
    kafka: EmbeddedKafka, topics: KafkaTopics, service_env: dict[str, str], tmp_path: Path
) -> None:
    # It once ended in "service_failed UnknownError: [Error -1]" and a traceback.
    result = run_script(
        "clickstream-producer",
        env={
            **service_env,
            "KAFKA_ENABLE_IDEMPOTENCE": "true",
            "PRODUCER_EVENTS": "10",
            "PRODUCER_RATE": "0",
            "METRICS_PORT": "0",
            "LOG_FORMAT": "json",
        },
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    failed = [orjson.loads(line) for line in output.splitlines() if "service_failed" in line]
    assert len(failed) == 1, output
    assert "KAFKA_ENABLE_IDEMPOTENCE=false" in failed[0]["error"]
    assert "Traceback" not in output
    assert "exception" not in failed[0]
