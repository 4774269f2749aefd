"""Kafka: settings → files → DNS → TCP → TLS → login → topics → consumer group → lag."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from clickstream_ops.check.files import CertFile, check_files
from clickstream_ops.check.network import check_dns, check_tcp, check_tls
from clickstream_ops.check.results import Result, ServiceChecks
from clickstream_ops.check.settings import KafkaCheckSettings, Section
from clickstream_runtime.tls import TlsFileError

STEPS = ("settings", "certificates", "dns", "tcp", "tls", "auth", "topics", "group", "lag")
VARIABLE = "KAFKA_BOOTSTRAP_SERVERS"

#: ``(group, topic) -> {partition: next offset}`` from the aggregator's table, or None.
StoredOffsets = Callable[[str, str], Awaitable[dict[int, int] | None]]


def _endpoints(settings: KafkaCheckSettings) -> list[tuple[str, int]]:
    pairs = [s.strip().rpartition(":") for s in settings.kafka_bootstrap_servers.split(",")]
    return [(host.strip("[]"), int(port)) for host, _, port in pairs]


def _files(settings: KafkaCheckSettings) -> list[CertFile]:
    files = (
        ("KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile, False),
        ("KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile, False),
        ("KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile, True),
    )
    return [CertFile(name, path, is_key) for name, path, is_key in files if path is not None]


async def check_kafka(
    section: Section[KafkaCheckSettings], wait_s: float, stored: StoredOffsets
) -> list[Result]:
    checks = ServiceChecks("kafka", STEPS)
    await _run(checks, section, wait_s, stored)
    return checks.results()


async def _run(
    checks: ServiceChecks,
    section: Section[KafkaCheckSettings],
    wait_s: float,
    stored: StoredOffsets,
) -> None:
    settings = section.settings
    if settings is None:
        checks.fail(
            "settings",
            section.error or "invalid",
            f"fix the variable named; {VARIABLE} is host:port",
        )
        return
    tls = (
        "TLS with client certificate"
        if settings.kafka_ssl_certfile
        else ("TLS" if settings.kafka_uses_tls else "plaintext")
    )
    checks.ok(
        "settings",
        f"{VARIABLE}={settings.kafka_bootstrap_servers} ({tls}), "
        f"topic {settings.kafka_topic}, group {settings.kafka_group_id}",
    )
    check_files(checks, _files(settings))
    endpoints = _endpoints(settings)
    if checks.blocked or not await check_dns(checks, [h for h, _ in endpoints], VARIABLE):
        return
    if not await check_tcp(checks, endpoints, VARIABLE, wait_s):
        return
    if settings.kafka_uses_tls:
        try:
            context = settings.kafka_ssl_context()
        except TlsFileError as exc:
            checks.fail("tls", str(exc.code), "fix the file named")
            return
        assert context is not None
        host, port = endpoints[0]
        if not await check_tls(checks, host, port, context, "KAFKA_SSL_CAFILE", wait_s):
            return
    else:
        checks.skip("tls", "plaintext (KAFKA_SSL_CAFILE not set)")
    options = settings.kafka_client_options() | {"request_timeout_ms": int(wait_s * 1000)}
    admin = AIOKafkaAdminClient(**options)
    try:
        async with asyncio.timeout(wait_s * 2):
            await admin.start()
            cluster = await admin.describe_cluster()
    except (KafkaError, OSError, TimeoutError) as exc:
        checks.fail(
            "auth",
            f"no metadata from the brokers ({type(exc).__name__}: {exc})",
            "with TLS, the client certificate/key may be rejected; "
            "otherwise the listener may need TLS (set KAFKA_SSL_CAFILE)",
        )
        await admin.close()
        return
    try:
        checks.ok(
            "auth",
            f"cluster {cluster.get('cluster_id')}: "
            f"{len(cluster.get('brokers', []))} broker(s) answered",
        )
        partitions = await _topics(checks, admin, settings)
        if partitions:
            tps = [TopicPartition(settings.kafka_topic, p) for p in partitions]
            committed = await _group(checks, admin, settings.kafka_group_id, tps, wait_s)
            await _lag(checks, options, settings, partitions, committed, stored, wait_s)
    finally:
        await admin.close()


async def _topics(
    checks: ServiceChecks, admin: AIOKafkaAdminClient, settings: KafkaCheckSettings
) -> list[int]:
    described = {
        t["topic"]: t
        for t in await admin.describe_topics([settings.kafka_topic, settings.kafka_dlq_topic])
    }
    counts: dict[str, int] = {}
    for name in (settings.kafka_topic, settings.kafka_dlq_topic):
        topic = described.get(name)
        if topic is None or topic.get("error_code", 0) != 0 or not topic["partitions"]:
            checks.fail(
                "topics",
                f"topic {name} does not exist",
                "create the topics with `clickstream-setup` (or in the Aiven console)",
            )
            return []
        counts[name] = len(topic["partitions"])
    checks.ok("topics", ", ".join(f"{n}: {c} partition(s)" for n, c in counts.items()))
    return sorted(p["partition"] for p in described[settings.kafka_topic]["partitions"])


async def _group(
    checks: ServiceChecks,
    admin: AIOKafkaAdminClient,
    group: str,
    partitions: list[TopicPartition],
    wait_s: float,
) -> dict[int, int]:
    try:
        async with asyncio.timeout(wait_s):
            [response] = await admin.describe_consumer_groups([group])
            # Explicit partitions: some brokers (Tansu) drop "all partitions" requests.
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    except (KafkaError, OSError, TimeoutError, ValueError) as exc:
        checks.fail(
            "group",
            f"cannot describe group {group} ({type(exc).__name__}: {exc})",
            "the login may lack DESCRIBE on the group (Aiven ACLs)",
        )
        return {}
    state, members = _group_state(response)
    note = "" if members else " (no aggregator connected)"
    checks.ok("group", f"{group}: state {state}, {members} member(s){note}")
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def _group_state(response: Any) -> tuple[str, int]:
    for entry in response.groups:
        # DescribeGroups v0-v5: (error_code, group_id, state, protocol_type, protocol, members, ...)
        values = entry.to_object() if hasattr(entry, "to_object") else None
        if isinstance(values, dict):
            return str(values.get("state") or "unknown"), len(values.get("members") or [])
        return str(entry[2] or "unknown"), len(entry[5] or [])
    return "unknown", 0


async def _lag(
    checks: ServiceChecks,
    options: dict[str, Any],
    settings: KafkaCheckSettings,
    partitions: list[int],
    committed: dict[int, int],
    stored: StoredOffsets,
    wait_s: float,
) -> None:
    consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(settings.kafka_topic, p) for p in partitions]
    try:
        async with asyncio.timeout(wait_s * 2):
            await consumer.start()
            ends = {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
    except (KafkaError, OSError, TimeoutError) as exc:
        checks.fail(
            "lag",
            f"cannot read high watermarks ({type(exc).__name__}: {exc})",
            "the login may lack DESCRIBE/READ on the topic",
        )
        return
    finally:
        await consumer.stop()
    from_table = await stored(settings.kafka_group_id, settings.kafka_topic)
    # The aggregator's offsets in PostgreSQL are the truth (committed with the
    # metrics); the group's Kafka offsets are a mirror and may trail them.
    source, positions = (
        ("PostgreSQL consumer_offsets", from_table)
        if from_table
        else ("the group's committed offsets", committed)
    )
    if not positions:
        checks.ok("lag", f"no committed offsets yet; {sum(ends.values())} message(s) in the topic")
        return
    lags = {p: max(ends[p] - positions.get(p, 0), 0) for p in ends}
    worst = max(lags, key=lambda p: lags[p])
    checks.ok(
        "lag",
        f"{sum(lags.values())} message(s) behind in total, most on partition "
        f"{worst} ({lags[worst]}), from {source}",
    )
