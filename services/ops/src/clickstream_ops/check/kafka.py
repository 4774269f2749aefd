"""Kafka: settings → files → DNS → TCP → TLS → login → topics → consumer group → lag."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, UnknownError

from clickstream_ops.check.files import CertFile, check_files
from clickstream_ops.check.network import check_dns, check_tcp, check_tls
from clickstream_ops.check.offsets import Judgement, LogRange, judge, out_of_range_fix
from clickstream_ops.check.results import Result, ServiceChecks
from clickstream_ops.check.settings import KafkaCheckSettings, Section
from clickstream_runtime.tls import TlsFileError

STEPS = ("settings", "certificates", "dns", "tcp", "tls", "auth", "topics", "group", "lag")
VARIABLE = "KAFKA_BOOTSTRAP_SERVERS"

#: A stored offset beyond the log end is read again after this long before it fails.
_RECHECK_S = 2.0

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
        error = section.error or "invalid"
        # The host:port reminder only where it applies: not for a certificate problem.
        hint = f"; {VARIABLE} is host:port[,host:port...]" if VARIABLE in error else ""
        checks.fail("settings", error, f"fix the variable(s) named{hint}")
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
    # Every topic's metadata: a request naming the topics would create them on a
    # broker that auto-creates topics (aiokafka allows it in named requests).
    described = {t["topic"]: t for t in await admin.describe_topics()}
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
        async with asyncio.timeout(wait_s * 2):
            response, offsets = await _describe_group(admin, group, partitions, wait_s)
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


async def _describe_group(
    admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition], wait_s: float
) -> tuple[Any, dict[TopicPartition, Any]]:
    """The group's description and committed offsets, asked again for up to ``wait_s``
    while the broker is not ready to answer: Apache Kafka answers
    COORDINATOR_NOT_AVAILABLE while it creates ``__consumer_offsets`` (at the first
    group request it ever gets) and while a coordinator moves."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        try:
            [response] = await admin.describe_consumer_groups([group])
            # Explicit partitions: some brokers (Tansu) drop "all partitions" requests.
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
        except KafkaError as error:
            if not error.retriable or loop.time() + 0.2 > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        return response, offsets


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
    tps = [TopicPartition(settings.kafka_topic, p) for p in partitions]
    try:
        logs = await log_ranges(options, tps, wait_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        checks.fail(
            "lag",
            f"cannot read the partitions' log start and end ({type(exc).__name__}: {exc})",
            "the login may lack DESCRIBE/READ on the topic",
        )
        return
    from_table = await stored(settings.kafka_group_id, settings.kafka_topic)
    in_log = sum(log.end - log.start for log in logs.values())
    # The aggregator's offsets in PostgreSQL are the truth (committed with the
    # metrics); the group's Kafka offsets are a mirror and may trail them.
    if from_table:
        verdict = judge(from_table, logs)
        if any(w.beyond_end for w in verdict.out_of_range):
            # Right after a leader election the new leader's high watermark trails
            # what was written: as the aggregator does, ask again after a wait.
            await asyncio.sleep(min(wait_s, _RECHECK_S))
            with contextlib.suppress(KafkaError, OSError, TimeoutError):  # else the first stands
                verdict = judge(from_table, await log_ranges(options, tps, wait_s))
        _judge_stored(checks, settings, verdict, "PostgreSQL consumer_offsets")
    elif committed:
        verdict = judge(committed, logs)
        # The aggregator does not read these (a claim starts from PostgreSQL, else
        # the log start): a mirror out of range is a note, not a failure.
        note = (
            f"; the group's offsets of partition(s) "
            f"{', '.join(str(w.partition) for w in verdict.out_of_range)} are outside the log "
            "(unused: consumer_offsets has no rows for this group and topic)"
            if verdict.out_of_range
            else ""
        )
        checks.ok("lag", _lag_text(verdict, "the group's committed offsets") + note)
    else:
        checks.ok("lag", f"no committed offsets yet; {in_log} message(s) in the topic")


def _judge_stored(
    checks: ServiceChecks, settings: KafkaCheckSettings, verdict: Judgement, source: str
) -> None:
    if verdict.out_of_range:
        shown = verdict.out_of_range[:3]
        more = len(verdict.out_of_range) - len(shown)
        checks.fail(
            "lag",
            f"{'; '.join(w.describe() for w in shown)}"
            f"{f' (and {more} more partition(s))' if more else ''}, from {source}: "
            "the aggregator will not consume "
            + ("these partitions" if len(verdict.out_of_range) > 1 else "this partition"),
            out_of_range_fix(verdict.out_of_range, settings.kafka_group_id, settings.kafka_topic),
        )
        return
    checks.ok("lag", _lag_text(verdict, source))


def _lag_text(verdict: Judgement, source: str) -> str:
    if not verdict.lags:
        return f"no partition to measure, from {source}"
    worst = max(verdict.lags, key=lambda p: verdict.lags[p])
    return (
        f"{verdict.total_lag} message(s) behind in total, most on partition "
        f"{worst} ({verdict.lags[worst]}), from {source}"
    )


async def log_ranges(
    options: dict[str, Any], tps: list[TopicPartition], wait_s: float
) -> dict[int, LogRange]:
    """Log start and end of each partition; the end is the fetch high-watermark.

    ``end_offsets()`` (ListOffsets) under-reports on some brokers (Tansu answers
    the last batch's base offset + 1), while a fetch response carries the true
    high-watermark: fetch one small chunk from each partition's start and read it.
    """
    consumer = AIOKafkaConsumer(
        **options,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=1024,
        fetch_max_wait_ms=100,
    )
    try:
        async with asyncio.timeout(wait_s * 2):
            await consumer.start()
            starts, listed = await _listed(consumer, tps)
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, starts[tp])
            while any(consumer.highwater(tp) is None for tp in tps):
                await consumer.getmany(timeout_ms=100, max_records=1)
            return {
                tp.partition: LogRange(
                    starts[tp], max(consumer.highwater(tp) or 0, listed[tp], starts[tp])
                )
                for tp in tps
            }
    finally:
        await consumer.stop()


async def _listed(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Log start and listed end from each partition's leader, asked until it answers.

    A leader elected a moment ago answers OFFSET_NOT_AVAILABLE until its high
    watermark is known (aiokafka raises it as an unknown error), one that moved
    NOT_LEADER: both pass; the caller's timeout bounds the wait.
    """
    while True:
        try:
            return await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        except KafkaError as error:
            if not (error.retriable or isinstance(error, UnknownError)):
                raise
            await asyncio.sleep(0.2)
