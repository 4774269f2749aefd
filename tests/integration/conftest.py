"""Per-test isolation on the session's servers: a database, topics, a service env.

Every test gets a fresh database and uniquely named topics and consumer group,
so tests never see each other's data and need no clean-up between them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clickstream_devstack.broker import EmbeddedKafka
from clickstream_devstack.environment import (
    EVENTS_PARTITIONS,
    Database,
    KafkaTopics,
    create_topics,
)
from clickstream_devstack.environment import (
    service_env as build_service_env,
)
from clickstream_devstack.postgres import EmbeddedPostgres
from clickstream_devstack.services import ServiceGroup

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


@pytest.fixture
def make_topics(kafka: EmbeddedKafka) -> TopicsFactory:
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
def service_env(kafka: EmbeddedKafka, topics: KafkaTopics, database: Database) -> dict[str, str]:
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


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[EmbeddedKafka]:
    """A broker of the test's own, for tests that kill it (the session's is shared)."""
    broker = EmbeddedKafka(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
