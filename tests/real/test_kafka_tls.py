"""TLS with client certificates on Apache Kafka's own SSL listener (no proxy).

The broker requires a client certificate signed by the test CA
(``ssl.client.auth=required``, PEM key and trust stores); the services connect
with their ``KAFKA_SSL_*`` settings exactly as they do to Aiven.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_ops.setup.kafka import ensure_topics
from clickstream_producer.main import run as run_producer
from clickstream_producer.settings import ProducerSettings
from integration.test_tls import publish_tls, start_must_fail
from support.aggregator import running_aggregator, settings_from_env, wait_applied
from support.reference import stored_rows
from support.tls_certs import TlsFiles


@pytest.fixture
async def tls_topics(apache_kafka: ApacheKafka, kafka_tls_files: TlsFiles) -> KafkaTopics:
    """Unique topics, created through the SSL listener as `clickstream-setup kafka` would."""
    topics = KafkaTopics.unique(prefix="real-tls")
    options = kafka_tls_files.kafka_settings(apache_kafka.ssl_bootstrap).kafka_client_options()
    await ensure_topics(options, topics.partition_counts())
    return topics


@pytest.fixture
def tls_env(
    apache_kafka: ApacheKafka,
    kafka_tls_files: TlsFiles,
    tls_topics: KafkaTopics,
    database: Database,
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": apache_kafka.ssl_bootstrap,
        **kafka_tls_files.kafka_env(),
        **tls_topics.env(),
        **database.env,
        "METRICS_PORT": "0",
    }


async def test_aggregator_consumes_through_the_ssl_listener(
    apache_kafka: ApacheKafka,
    kafka_tls_files: TlsFiles,
    tls_topics: KafkaTopics,
    tls_env: dict[str, str],
    database: Database,
) -> None:
    sessions = await publish_tls(
        kafka_tls_files.kafka_settings(apache_kafka.ssl_bootstrap), tls_topics.events, 400, seed=31
    )
    settings = settings_from_env(tls_env)
    assert settings.kafka_uses_tls

    async with running_aggregator(settings) as task:
        await wait_applied(database.dsn, tls_topics.group, tls_topics.events, 400, running=task)

    stored = await stored_rows(database.dsn)
    assert set(stored) == sessions
    assert sum(row["total_events"] for row in stored.values()) == 400


async def test_producer_publishes_through_the_ssl_listener_idempotently(
    apache_kafka: ApacheKafka,
    kafka_tls_files: TlsFiles,
    tls_topics: KafkaTopics,
    tls_env: dict[str, str],
    database: Database,
) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": apache_kafka.ssl_bootstrap,
        **kafka_tls_files.kafka_env(),
        "KAFKA_TOPIC": tls_topics.events,
        "KAFKA_ENABLE_IDEMPOTENCE": "true",
        "PRODUCER_EVENTS": "300",
        "PRODUCER_RATE": "0",
        "PRODUCER_SEED": "9",
        "METRICS_PORT": "0",
    }
    fields = ProducerSettings.model_fields
    values: dict[str, Any] = {k.lower(): v for k, v in env.items() if k.lower() in fields}
    settings = ProducerSettings(_env_file=None, **values)
    assert settings.kafka_enable_idempotence
    with structlog.testing.capture_logs() as logs:
        await run_producer(settings, asyncio.Event())
    finished = next(entry for entry in logs if entry["event"] == "finished")
    assert finished["events"] == finished["acked"] == 300

    async with running_aggregator(settings_from_env(tls_env)) as task:
        await wait_applied(database.dsn, tls_topics.group, tls_topics.events, 300, running=task)
    stored = await stored_rows(database.dsn)
    assert sum(row["total_events"] for row in stored.values()) == 300


@pytest.mark.parametrize("client", ["no certificate", "certificate of another CA"])
async def test_a_client_without_a_valid_certificate_is_refused(
    apache_kafka: ApacheKafka, kafka_tls_files: TlsFiles, client: str
) -> None:
    files = kafka_tls_files
    context = ssl.create_default_context(cafile=str(files.ca))
    if client == "certificate of another CA":
        context.load_cert_chain(str(files.stranger_cert), str(files.stranger_key))
    since = apache_kafka.log_path.stat().st_size
    producer = AIOKafkaProducer(
        bootstrap_servers=apache_kafka.ssl_bootstrap,
        security_protocol="SSL",
        ssl_context=context,
        request_timeout_ms=10_000,
    )
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()

    # The broker itself refused the handshake, and says so in its log.
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        with apache_kafka.log_path.open("rb") as handle:
            handle.seek(since)
            logged = handle.read().decode(errors="replace")
        if "SSL handshake failed" in logged:
            break
        assert asyncio.get_running_loop().time() < deadline, logged[-2000:]
        await asyncio.sleep(0.2)


async def test_a_wrong_kafka_ca_is_named(
    kafka_tls_files: TlsFiles, tls_env: dict[str, str]
) -> None:
    settings = settings_from_env(tls_env, kafka_ssl_cafile=kafka_tls_files.other_ca)

    error = await start_must_fail(settings)

    assert isinstance(error, SystemExit)
    assert f"KAFKA_SSL_CAFILE={kafka_tls_files.other_ca}: " in str(error)


async def test_a_refused_client_certificate_stops_the_aggregator_at_start(
    kafka_tls_files: TlsFiles, tls_env: dict[str, str]
) -> None:
    settings = settings_from_env(
        tls_env,
        kafka_ssl_certfile=kafka_tls_files.stranger_cert,
        kafka_ssl_keyfile=kafka_tls_files.stranger_key,
    )

    error = await start_must_fail(settings)

    assert isinstance(error, SystemExit)
    assert f"KAFKA_SSL_CERTFILE={kafka_tls_files.stranger_cert}: " in str(error)
