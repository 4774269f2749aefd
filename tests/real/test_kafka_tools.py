"""Kafka's own group tool sees what ``clickstream-check`` and PostgreSQL say.

The aggregator keeps its offsets in PostgreSQL (``consumer_offsets``, committed
with the metrics) and copies them to the Kafka consumer group about once a second
(``mirror.py``), only so that operators' usual tools show its progress. Run on the
three-node cluster: an aggregator applies a topic, stops once the group's Kafka
offsets have caught up with PostgreSQL, and more events arrive; then
``kafka-consumer-groups --describe`` (``ConsumerGroupCommand`` from ``kafka-tools``)
shows, partition by partition, the offsets PostgreSQL holds and the lag
``clickstream-check`` reports.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from clickstream_devstack.environment import Database, KafkaTopics, service_env
from clickstream_devstack.servers.jvm import kafka_tools
from clickstream_devstack.servers.jvm.kafka_cluster import KafkaCluster
from clickstream_devstack.services import ServiceGroup, script_path
from support.fault_cluster import Cluster
from support.feed import as_messages, generate, publish

pytestmark = [pytest.mark.timeout(300)]

PARTITIONS = 3
FIRST, LATER = 3000, 700


async def kafka_group_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


async def stored_offsets(dsn: str, group: str, topic: str) -> dict[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM consumer_offsets "
            "WHERE group_id = $1 AND topic = $2",
            group,
            topic,
        )
    finally:
        await conn.close()
    return {r["partition"]: r["next_offset"] for r in rows}


def parse_describe(output: str, topic: str) -> dict[int, tuple[int, int, int]]:
    """partition -> (CURRENT-OFFSET, LOG-END-OFFSET, LAG) from the tool's table."""
    lines = [line.split() for line in output.splitlines() if line.strip()]
    (header,) = [cells for cells in lines if "CURRENT-OFFSET" in cells]
    column = {name: i for i, name in enumerate(header)}
    table: dict[int, tuple[int, int, int]] = {}
    for cells in lines:
        if len(cells) >= len(header) - 3 and cells[column["TOPIC"]] == topic:
            table[int(cells[column["PARTITION"]])] = (
                int(cells[column["CURRENT-OFFSET"]]),
                int(cells[column["LOG-END-OFFSET"]]),
                int(cells[column["LAG"]]),
            )
    return table


async def test_the_group_tool_shows_the_offsets_and_lag_clickstream_check_reports(
    kafka_cluster: KafkaCluster, database: Database, services: ServiceGroup, tmp_path: Path
) -> None:
    kafka_cluster.start()  # a failed scenario may have left a node down
    topics = KafkaTopics.unique(prefix="tools", partitions=PARTITIONS)
    await kafka_cluster.create_topics(topics.partition_counts())
    events = as_messages(generate(FIRST + LATER, seed=41, sessions=200))
    await publish(kafka_cluster.bootstrap, topics.events, events[:FIRST])

    env = service_env(kafka_cluster, topics, database, LOG_LEVEL="info")
    aggregator = Cluster(services, env, database, topics)
    aggregator.start("r1")
    await aggregator.wait_applied(FIRST)
    stored = await stored_offsets(database.dsn, topics.group, topics.events)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    # The mirror commits about once a second: wait for it, then stop.
    while (
        mirrored := await kafka_group_offsets(kafka_cluster.bootstrap, topics.group, topics.events)
    ) != stored:
        aggregator.assert_running()
        assert loop.time() < deadline, f"Kafka's group offsets {mirrored}, PostgreSQL's {stored}"
        await asyncio.sleep(0.5)
    assert aggregator.stop("r1") == 0
    await publish(kafka_cluster.bootstrap, topics.events, events[FIRST:])

    described = await asyncio.to_thread(
        kafka_tools.run,
        "kafka-consumer-groups",
        ["--bootstrap-server", kafka_cluster.bootstrap, "--describe", "--group", topics.group],
    )
    assert described.returncode == 0, described.stdout + described.stderr
    table = parse_describe(described.stdout, topics.events)
    check = await asyncio.to_thread(
        subprocess.run,
        [str(script_path("clickstream-check")), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    results = [json.loads(line) for line in check.stdout.splitlines() if line.startswith("{")]
    (lag,) = [r for r in results if r["service"] == "kafka" and r["step"] == "lag"]

    # The tool shows PostgreSQL's offsets (through the mirror) and the log ends.
    assert {p: current for p, (current, _end, _lag) in table.items()} == stored
    assert sum(end for _current, end, _lag in table.values()) == FIRST + LATER
    lags = {p: behind for p, (_current, _end, behind) in table.items()}
    assert sum(lags.values()) == LATER
    # clickstream-check: "<total> message(s) behind in total, most on partition <p> (<n>), from
    # PostgreSQL consumer_offsets"; the same total, and the same most-lagging partition.
    worst = max(lags, key=lambda p: (lags[p], -p))
    assert lag["verdict"] == "OK", lag
    assert lag["detail"] == (
        f"{LATER} message(s) behind in total, most on partition {worst} ({lags[worst]}), "
        "from PostgreSQL consumer_offsets"
    ), (lag, described.stdout)
    print(f"\n{described.stdout}\nclickstream-check: {lag['detail']}")
