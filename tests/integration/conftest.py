"""Per-test isolation on the session's servers: a database, topics, a service env.

Every test gets a fresh database and uniquely named topics and consumer group,
so tests never see each other's data and need no clean-up between them.

**Brokers.** ``kafka`` is parametrized: a test that talks to Kafka runs on Tansu
(the embedded default, ``[tansu]``) and on Apache Kafka (one KRaft node from
Maven Central, ``[apache-kafka]``), each started once per session when first
needed. Without Java the Apache Kafka variants are skipped, and the summary
says so in capitals. A test that runs on one broker only says why, in one line:
``@pytest.mark.tansu_only("why")``, ``@pytest.mark.apache_kafka_only("why")``, or
``@pytest.mark.one_broker("why")`` for a long test run once: on Apache Kafka where
Java is present, on Tansu otherwise (on the test or as the module's ``pytestmark``).
``@pytest.mark.apache_kafka_xfail("what")`` marks a known, open failure on Apache
Kafka: reported as XFAIL (XPASS once it passes), never silently absent.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from clickstream_aggregator.migrate import migrate
from clickstream_devstack.environment import (
    EVENTS_PARTITIONS,
    Database,
    KafkaTopics,
    create_topics,
)
from clickstream_devstack.environment import (
    service_env as build_service_env,
)
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.jvm.artifacts import JvmUnavailableError, find_java
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_devstack.services import ServiceGroup
from support.private_dirs import private_postgres

#: What a test gets as ``kafka`` here.
SessionBroker = EmbeddedKafka | ApacheKafka
TANSU = "tansu"
APACHE_KAFKA = "apache-kafka"
BROKERS = (TANSU, APACHE_KAFKA)
_ONLY = {"tansu_only": TANSU, "apache_kafka_only": APACHE_KAFKA}
_skipped: list[str] = []


@functools.cache
def _java_present() -> bool:
    try:
        find_java()
    except JvmUnavailableError:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the variants a marker excludes (its reason is the one line why)."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        broker = callspec.params.get("kafka") if callspec is not None else None
        wanted = {_ONLY[m.name] for m in item.iter_markers() if m.name in _ONLY}
        if broker is not None and item.get_closest_marker("one_broker") is not None:
            wanted.add(APACHE_KAFKA if _java_present() else TANSU)
        known = item.get_closest_marker("apache_kafka_xfail")
        if broker == APACHE_KAFKA and known is not None:
            item.add_marker(pytest.mark.xfail(reason=known.args[0], strict=False))
        if broker is not None and wanted and broker not in wanted:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reason in _skipped[:1]:
        terminalreporter.write_sep(
            "!",
            f"APACHE KAFKA VARIANTS SKIPPED: integration tests ran on Tansu only: {reason}",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def apache_kafka_broker(request: pytest.FixtureRequest) -> ApacheKafka:
    """The session's Apache Kafka node (``tests/conftest.py``; the real tier's too)."""
    try:
        find_java()
    except JvmUnavailableError as error:
        _skipped.append(str(error))
        pytest.skip(f"Apache Kafka variant skipped: {error}")
    broker: ApacheKafka = request.getfixturevalue("apache_kafka_node")
    if not broker.running:
        broker.start()  # a test that stopped it must not break the later ones
    return broker


@pytest.fixture(scope="session", params=BROKERS)
def kafka(request: pytest.FixtureRequest) -> SessionBroker:
    """The session's broker of this variant: Tansu or Apache Kafka (see the module doc);
    both brokers are defined in ``tests/conftest.py``, so every tier shares them."""
    name = "apache_kafka_broker" if request.param == APACHE_KAFKA else "tansu_broker"
    broker: SessionBroker = request.getfixturevalue(name)
    return broker


TopicsFactory = Callable[..., KafkaTopics]


@pytest.fixture
def database(postgres: EmbeddedPostgres) -> Iterator[Database]:
    """A fresh, empty database, dropped after the test (even if services still hold it)."""
    if not postgres.running:
        # A test that stopped the shared server must not break every later test.
        postgres.start()
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    yield Database.on(postgres, name)
    if postgres.running:
        postgres.drop_database(name)


@pytest.fixture(scope="module")
def migrated_dsn(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A migrated database that a module's tests share (property tests write many examples)."""
    name = f"module_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    database = Database.on(postgres, name)

    async def migrated() -> None:
        conn = await asyncpg.connect(database.dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(migrated())
    yield database.dsn
    postgres.drop_database(name)


@pytest.fixture
def make_topics(kafka: SessionBroker) -> TopicsFactory:
    """Create unique topics: ``make_topics(partitions=3)`` -> :class:`KafkaTopics`."""

    def make(partitions: int = EVENTS_PARTITIONS) -> KafkaTopics:
        if not kafka.running:
            kafka.start()
        topics = KafkaTopics.unique(partitions=partitions)
        create_topics(kafka, topics)
        return topics

    return make


@pytest.fixture
def topics(make_topics: TopicsFactory) -> KafkaTopics:
    """A unique events topic (6 partitions), its dead-letter topic and a unique group."""
    return make_topics()


@pytest.fixture
def topic(topics: KafkaTopics) -> KafkaTopics:
    """The same object as ``topics``, for tests that read better in the singular."""
    return topics


@pytest.fixture
def service_env(kafka: SessionBroker, topics: KafkaTopics, database: Database) -> dict[str, str]:
    """A full environment for a service subprocess against this test's topics and database."""
    return build_service_env(kafka, topics, database)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceGroup]:
    """Launch console scripts (``services.launch("clickstream-aggregator", env=...)``).

    Each runs in its own process group with its log in ``tmp_path``; all are stopped
    after the test, and their working directory has no ``.env`` to pick up.
    """
    group = ServiceGroup(tmp_path / "services")
    try:
        yield group
    finally:
        group.stop_all(timeout=15.0)


@pytest.fixture(scope="module")
def guarded_postgres() -> Iterator[EmbeddedPostgres]:
    """A server of the module's own that checks passwords (the session's one trusts
    every login): ``POSTGRES_PASSWORD=right-password``."""
    with private_postgres("clickstream-guarded-pg-", password="right-password") as server:
        yield server


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[EmbeddedKafka]:
    """A broker of the test's own, for tests that kill it (the session's is shared)."""
    broker = EmbeddedKafka(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
