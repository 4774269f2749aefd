"""Test-suite wiring: markers, ``--run-soak`` and the session's servers.

The broker, PostgreSQL and the Apache Kafka node start at most once per session,
and only when a test asks for them; the fixtures that hand out per-test topics and
databases live in ``tests/integration/conftest.py``. The Apache Kafka node is
defined here so that the integration tier's ``[apache-kafka]`` variants and the
real tier (``tests/real``) share one node in a session (a fixture imported into
each tier's conftest would be a node per tier).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.jvm.artifacts import JvmUnavailableError
from clickstream_devstack.servers.jvm.kafka import ApacheKafka, KafkaTls
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from support.private_dirs import private_dir, private_postgres
from support.tls_certs import TlsFiles, make_tls_files

# Hypothesis times each example (200 ms by default) and fails a test whose examples
# are slow to run or to generate: on a loaded or slower machine that is a failure of
# the machine, not of the code. Tests keep their own settings on top of this.
settings.register_profile(
    "clickstream", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("clickstream")

INTEGRATION_DIR = Path(__file__).parent / "integration"
# A test that asks for any of these talks to a real server.
SERVER_FIXTURES = frozenset(
    {
        "kafka",
        "postgres",
        "database",
        "topics",
        "topic",
        "make_topics",
        "service_env",
        "services",
        "server_dir",
    }
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-soak",
        action="store_true",
        default=False,
        help="also run the long tests marked soak (make soak)",
    )


# tryfirst: the markers must be in place before `-m` deselects by them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_soak = config.getoption("--run-soak")
    skip_soak = pytest.mark.skip(reason="soak test: give --run-soak (make soak)")
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR) or SERVER_FIXTURES.intersection(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.integration)
        if not run_soak and item.get_closest_marker("soak") is not None:
            item.add_marker(skip_soak)


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    """One Tansu broker for the session; tests isolate themselves with unique topics."""
    broker = EmbeddedKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka(tansu_broker: EmbeddedKafka) -> EmbeddedKafka:
    """The session's Tansu (the integration tier's ``kafka`` is parametrized over both
    brokers, the real tier's is Apache Kafka)."""
    return tansu_broker


@pytest.fixture(scope="session")
def kafka_tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The CA, broker and client certificates of the Apache Kafka node's SSL listener."""
    return make_tls_files(tmp_path_factory.mktemp("kafka-tls"))


@pytest.fixture(scope="session")
def apache_kafka_node(
    tmp_path_factory: pytest.TempPathFactory, kafka_tls_files: TlsFiles
) -> Iterator[ApacheKafka]:
    """The session's one Apache Kafka node (KRaft): PLAINTEXT on ``bootstrap``, SSL with
    a required client certificate on ``ssl_bootstrap``. Ask for it through a tier's
    fixture (``apache_kafka_broker``, ``apache_kafka``), which says why when it skips."""
    files = kafka_tls_files
    broker = ApacheKafka(
        tmp_path_factory.mktemp("apache-kafka"),
        tls=KafkaTls(ca=files.ca, cert=files.server_cert, key=files.server_key),
    )
    try:
        broker.start()
    except JvmUnavailableError as error:
        pytest.skip(f"Apache Kafka skipped: {error}")
    print(f"\nApache Kafka {broker.version}: {broker.bootstrap}, log {broker.log_path}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A private directory for a test's own PostgreSQL: ``EmbeddedPostgres(server_dir / "d")``."""
    with private_dir("clickstream-pg-") as root:
        yield root


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One non-durable PostgreSQL for the session; tests isolate themselves with databases."""
    with private_postgres("clickstream-pg-") as server:
        yield server
