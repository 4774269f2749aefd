"""Operability against a real broker and PostgreSQL: metrics, readiness, secrets in logs.

Metrics and probes are read the way Prometheus and an orchestrator read them:
over HTTP from the service's own health server. Waits poll a condition with a
deadline; nothing sleeps to let something happen.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import asyncpg
import orjson
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.ports import free_port
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_devstack.services import Service, ServiceGroup
from clickstream_producer.main import run as run_producer
from clickstream_producer.metrics import ProducerMetrics
from clickstream_producer.settings import ProducerSettings
from clickstream_runtime.health import HealthServer
from clickstream_runtime.settings import load
from support.aggregator import applied_offsets, running_aggregator, settings_from_env, wait_applied
from support.feed import Message, as_messages, generate, publish

SECRET = "s3cr3t-Pa55-xyz"
LOCALHOST = "127.0.0.1"
#: One invalid message per validation stage, with the reason the aggregator records.
INVALID: list[tuple[Message, str]] = [
    ((b"bad-1", b"\xff\xfe not utf-8"), "not_utf8"),
    ((b"bad-2", b"{not json"), "not_json"),
    ((b"bad-3", b"[1, 2, 3]"), "not_object"),
    ((b"bad-4", b'{"event_type": "page_view"}'), "schema"),
    ((b"bad-5", b'{"event_type": "teleport"}'), "schema"),
]

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


# -- HTTP and exposition helpers ---------------------------------------------------


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(LOCALHOST, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=10)  # one response, then close
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def scrape(port: int) -> Samples:
    """``/metrics`` as {sample name: {sorted labels: value}}."""
    status, body = await http_get(port, "/metrics")
    assert status == 200
    samples: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str) -> float:
    """A sample summed over its label sets (0 when it has none yet, as Prometheus reads it)."""
    return sum(samples.get(name, {}).values())


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for labels, value in samples.get(name, {}).items()}


async def eventually(
    what: str,
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 60.0,
    alive: Callable[[], None] = lambda: None,
) -> None:
    """Poll ``check`` until true; ``alive`` raises if what we wait on has died meanwhile."""
    deadline = time.monotonic() + timeout
    while not await check():
        alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.1)


def task_alive(task: asyncio.Task[None]) -> Callable[[], None]:
    def check() -> None:
        if task.done():
            task.result()  # re-raises the service's own error
            raise AssertionError("the service stopped on its own")

    return check


async def readyz_is(port: int, expected: int) -> bool:
    """One probe round as an orchestrator does it; liveness must hold whatever readiness says."""
    health, _ = await http_get(port, "/healthz")
    assert health == 200
    status, _ = await http_get(port, "/readyz")
    return status == expected


async def listening_and_ready(port: int) -> bool:
    try:
        return await readyz_is(port, 200)
    except ConnectionRefusedError:
        return False  # the service has not opened its port yet


async def total_events(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT coalesce(sum(total_events), 0) FROM session_metrics")
        )
    finally:
        await conn.close()


# -- metrics --------------------------------------------------------------------------


async def test_aggregator_metrics_reflect_a_seeded_run_exactly(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, service_env: dict[str, str]
) -> None:
    valid = as_messages(generate(3000, seed=21))
    invalid = [message for message, _ in INVALID]
    await publish(kafka.bootstrap, topics.events, valid + invalid)
    consumed = len(valid) + len(invalid)
    port = free_port()
    settings = settings_from_env(service_env, metrics_port=port, metrics_host=LOCALHOST)

    async with running_aggregator(settings) as task:
        await wait_applied(database.dsn, topics.group, topics.events, consumed, running=task)
        # Counters move just after the commit and the relay runs after that: poll.
        latest: Samples = {}

        async def caught_up() -> bool:
            nonlocal latest
            latest = await scrape(port)
            seen = total(latest, "clickstream_aggregator_events_consumed_total")
            relayed = total(latest, "clickstream_aggregator_dead_letters_relayed_total")
            return seen >= consumed and relayed >= len(invalid)

        await eventually("metrics caught up", caught_up, alive=task_alive(task))
        assert await readyz_is(port, 200)

    m = latest
    assert total(m, "clickstream_aggregator_events_consumed_total") == consumed
    assert total(m, "clickstream_aggregator_events_applied_total") == len(valid)
    assert total(m, "clickstream_aggregator_events_deduplicated_total") == 0
    assert total(m, "clickstream_aggregator_events_dead_lettered_total") == len(invalid)
    expected_reasons: dict[str, float] = defaultdict(float)
    for _, reason in INVALID:
        expected_reasons[reason] += 1
    assert by_label(m, "clickstream_aggregator_events_dead_lettered_total", "reason") == (
        expected_reasons
    )
    assert total(m, "clickstream_aggregator_dead_letters_relayed_total") == len(invalid)
    # Every consumed message was in exactly one committed batch.
    assert total(m, "clickstream_aggregator_batch_size_sum") == consumed
    assert total(m, "clickstream_aggregator_batch_size_count") == total(
        m, "clickstream_aggregator_batches_total"
    )
    assert total(m, "clickstream_ready") == 1
    assert by_label(m, "clickstream_build_info", "service") == {"aggregator": 1.0}


def _producer_settings(
    kafka: EmbeddedKafka, topic: KafkaTopics, **overrides: object
) -> ProducerSettings:
    return load(
        ProducerSettings,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_topic=topic.events,
        metrics_host=LOCALHOST,
        producer_users=2000,
        producer_batch_bytes=64 * 1024,
        **overrides,
    )


async def test_producer_metrics_count_a_seeded_run_exactly(
    kafka: EmbeddedKafka, topic: KafkaTopics
) -> None:
    events = 5000
    metrics = ProducerMetrics.create()
    settings = _producer_settings(
        kafka, topic, producer_events=events, producer_rate=0, producer_seed=8,
        metrics_port=free_port(),
    )  # fmt: skip
    await run_producer(settings, asyncio.Event(), metrics=metrics)

    # The run (and its own server) has ended: serve the registry it filled the same way.
    server = HealthServer(metrics.registry, metrics.readiness)
    await server.start(LOCALHOST, 0)
    try:
        m = await scrape(server.port)
    finally:
        await server.stop()
    assert total(m, "clickstream_producer_events_produced_total") == events
    assert total(m, "clickstream_producer_events_acknowledged_total") == events
    assert total(m, "clickstream_producer_events_failed_total") == 0
    assert total(m, "clickstream_producer_send_batch_size_sum") == events
    assert total(m, "clickstream_producer_send_batch_size_count") == total(
        m, "clickstream_producer_send_batches_total"
    )
    assert total(m, "clickstream_producer_send_batches_total") >= topic.partitions
    assert total(m, "clickstream_producer_rate_events_per_second") > 0
    assert by_label(m, "clickstream_build_info", "service") == {"producer": 1.0}


async def test_producer_serves_health_and_metrics_while_it_runs(
    kafka: EmbeddedKafka, topic: KafkaTopics
) -> None:
    port = free_port()
    metrics = ProducerMetrics.create()
    settings = _producer_settings(
        kafka, topic, producer_events=0, producer_rate=200, producer_seed=9, metrics_port=port,
        producer_progress_every=100,
    )  # fmt: skip
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        producing = asyncio.create_task(run_producer(settings, stop, metrics=metrics))
        try:
            await eventually(
                "producer ready", lambda: listening_and_ready(port), alive=task_alive(producing)
            )

            async def acknowledged_some() -> bool:
                m = await scrape(port)
                return total(m, "clickstream_producer_events_acknowledged_total") >= 200

            await eventually("acknowledgements", acknowledged_some, alive=task_alive(producing))
            live = await scrape(port)
        finally:
            stop.set()
            await asyncio.wait_for(producing, 60)

    assert total(live, "clickstream_ready") == 1
    assert by_label(live, "clickstream_readiness_condition", "condition") == {"kafka": 1.0}
    assert total(live, "clickstream_producer_events_produced_total") >= total(
        live, "clickstream_producer_events_acknowledged_total"
    )
    # After the stop everything sent was acknowledged, and the metrics agree with the log.
    finished = next(entry for entry in logs if entry["event"] == "finished")
    registry = metrics.registry
    produced = registry.get_sample_value("clickstream_producer_events_produced_total")
    acknowledged = registry.get_sample_value("clickstream_producer_events_acknowledged_total")
    assert produced == acknowledged == finished["acked"] == finished["events"]
    assert any(entry["event"] == "progress" for entry in logs)


# -- readiness ----------------------------------------------------------------------


async def test_readiness_follows_a_postgres_outage_and_nothing_is_lost(
    kafka: EmbeddedKafka,
    topics: KafkaTopics,
    database: Database,
    service_env: dict[str, str],
    postgres: EmbeddedPostgres,
) -> None:
    events = as_messages(generate(2000, seed=33))
    before, during = events[:1000], events[1000:]
    await publish(kafka.bootstrap, topics.events, before)
    port = free_port()
    settings = settings_from_env(
        service_env,
        metrics_port=port,
        metrics_host=LOCALHOST,
        aggregator_ready_retry_threshold_s=1,
        aggregator_retry_initial_s=0.1,
        aggregator_retry_max_s=0.5,
    )

    async with running_aggregator(settings) as task:
        alive = task_alive(task)
        await wait_applied(database.dsn, topics.group, topics.events, len(before), running=task)
        await eventually("ready once assigned", lambda: readyz_is(port, 200), alive=alive)

        await asyncio.to_thread(postgres.stop)
        try:
            # A batch must hit the outage for the aggregator to start retrying.
            await publish(kafka.bootstrap, topics.events, during)
            await eventually(
                "not ready during the outage", lambda: readyz_is(port, 503), alive=alive
            )
            _, body = await http_get(port, "/readyz")
            failing = orjson.loads(body)["failing"]
            assert "postgres" in failing
        finally:
            await asyncio.to_thread(postgres.start)

        await eventually("ready again", lambda: readyz_is(port, 200), alive=alive)
        await wait_applied(database.dsn, topics.group, topics.events, len(events), running=task)
        retries = by_label(await scrape(port), "clickstream_aggregator_retries_total", "cause")

    assert retries.get("pg_unavailable", 0) >= 1
    assert "network" not in retries
    # Every event applied exactly once across the outage.
    assert await total_events(database.dsn) == len(events)


# -- secrets in logs ------------------------------------------------------------------


async def _wait_exit(service: Service, timeout: float = 60.0) -> int:
    async def exited() -> bool:
        return not service.running

    await eventually(f"{service.name} exits", exited, timeout=timeout)
    return service.process.returncode


def _log_text(service: Service) -> str:
    return Path(service.log_path).read_text(encoding="utf-8", errors="replace")


def _json_events(text: str) -> list[str]:
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            events.append(orjson.loads(line)["event"])
    return events


async def test_aggregator_never_logs_the_postgres_password(
    kafka: EmbeddedKafka,
    topics: KafkaTopics,
    database: Database,
    service_env: Mapping[str, str],
    services: ServiceGroup,
) -> None:
    env = {**service_env, "POSTGRES_PASSWORD": SECRET, "LOG_FORMAT": "json"}
    assert not any(key.startswith("KAFKA_SSL_") for key in env)
    messages = as_messages(generate(300, seed=41)) + [message for message, _ in INVALID]
    await publish(kafka.bootstrap, topics.events, messages)
    aggregator = services.launch("clickstream-aggregator", env=env)

    async def applied() -> bool:
        return await applied_offsets(database.dsn, topics.group, topics.events) >= len(messages)

    await eventually("aggregator applied the topic", applied, alive=services.check_running)
    assert services.stop(aggregator) == 0

    text = _log_text(aggregator)
    events = _json_events(text)
    assert "batch_committed" in events
    assert "aggregator_stopped" in events
    assert SECRET not in text


@pytest.mark.parametrize(
    ("variable", "value"),
    [("POSTGRES_PORT", "notaport"), ("KAFKA_BOOTSTRAP_SERVERS", "http://broker:9092/")],
)
async def test_aggregator_configuration_error_is_one_line_without_secrets(
    service_env: Mapping[str, str], services: ServiceGroup, variable: str, value: str
) -> None:
    env = {**service_env, "POSTGRES_PASSWORD": SECRET, variable: value}
    aggregator = services.launch("clickstream-aggregator", env=env)
    assert await _wait_exit(aggregator) != 0
    lines = [line for line in _log_text(aggregator).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("configuration error: ")
    assert variable in lines[0]
    assert SECRET not in lines[0]


async def test_producer_logs_no_secrets_and_names_a_bad_setting(
    kafka: EmbeddedKafka,
    service_env: Mapping[str, str],
    services: ServiceGroup,
) -> None:
    # The producer has no secret of its own; one in its environment must still not leak.
    env = {
        **service_env,
        "POSTGRES_PASSWORD": SECRET,
        "METRICS_PORT": str(free_port()),
        "METRICS_HOST": LOCALHOST,
    }
    producer = services.launch(
        "clickstream-producer", ["--events", "500", "--rate", "0", "--seed", "5"], env=env
    )
    assert await _wait_exit(producer) == 0
    text = _log_text(producer)
    events = _json_events(text)
    assert "health_server_started" in events
    assert "finished" in events
    assert SECRET not in text

    broken = services.launch(
        "clickstream-producer", ["--events", "1"], env={**env, "METRICS_PORT": "notaport"},
        name="producer-bad-setting",
    )  # fmt: skip
    assert await _wait_exit(broken) != 0
    lines = [line for line in _log_text(broken).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("configuration error: METRICS_PORT")
    assert SECRET not in lines[0]
