"""The real tier: Apache Kafka, Kafka Connect and OpenSearch, started from Maven Central jars.

Each server starts at most once per session, when a test first asks for it, and
stops at the end; its log stays in the session's temporary directory (printed at
start). Without Java (or without Maven and an empty cache) every test here that
needs a server is skipped, and the summary says so in capitals: this tier is never
silently absent.

Inside this folder ``kafka`` is the Apache Kafka broker (PLAINTEXT listener), so
the per-test ``topics``, ``make_topics``, ``database``, ``service_env`` and
``services`` of the integration tier work here unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clickstream_devstack.servers.jvm.artifacts import JvmUnavailableError, find_java
from clickstream_devstack.servers.jvm.connect import KafkaConnect
from clickstream_devstack.servers.jvm.kafka import ApacheKafka
from clickstream_devstack.servers.jvm.kafka_cluster import KafkaCluster
from clickstream_devstack.servers.jvm.opensearch import OpenSearch

# The integration tier's per-test isolation, on the Apache Kafka ``kafka`` below.
from integration.conftest import (  # noqa: F401 - fixtures, found by name
    database,
    make_topics,
    service_env,
    services,
    topic,
    topics,
)

REAL_DIR = Path(__file__).parent
_skipped: dict[str, str] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(REAL_DIR):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.real)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for servers, reason in _skipped.items():
        terminalreporter.write_sep(
            "!", f"REAL TIER SKIPPED: no test on {servers} ran: {reason}", red=True, bold=True
        )


def _unavailable(servers: str, error: JvmUnavailableError) -> None:
    _skipped[servers] = str(error)
    pytest.skip(f"real tier ({servers}) skipped: {error}")


@pytest.fixture(scope="session")
def java_available() -> None:
    """Skip (loudly) when there is no Java 17+ to run the servers with."""
    try:
        find_java()
    except JvmUnavailableError as error:
        _unavailable("Apache Kafka, Kafka Connect or OpenSearch", error)


@pytest.fixture(scope="session")
def real_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real")


@pytest.fixture(scope="session")
def apache_kafka(java_available: None, request: pytest.FixtureRequest) -> ApacheKafka:
    """Apache Kafka (KRaft, one node): PLAINTEXT on ``bootstrap``, SSL with a required
    client certificate on ``ssl_bootstrap`` (``kafka_tls_files``). The session's one
    node (``tests/conftest.py``), shared with the integration tier's variants."""
    broker: ApacheKafka = request.getfixturevalue("apache_kafka_node")
    return broker


@pytest.fixture(scope="session")
def kafka(apache_kafka: ApacheKafka) -> ApacheKafka:
    """In this tier the broker of ``topics``, ``service_env`` & co. is Apache Kafka."""
    if not apache_kafka.running:
        apache_kafka.start()  # a test that stopped it must not break the later ones
    return apache_kafka


@pytest.fixture(scope="session")
def kafka_cluster(java_available: None, real_dir: Path) -> Iterator[KafkaCluster]:
    """Three KRaft nodes (each broker and controller) from the same jars as
    ``apache_kafka``; replication 3 and ``min.insync.replicas=2`` by default. Each
    node's log is ``<real_dir>/kafka-cluster/node<id>/kafka.log``."""
    cluster = KafkaCluster(real_dir / "kafka-cluster")
    try:
        cluster.start()
    except JvmUnavailableError as error:
        cluster.stop()
        _unavailable("the three-node Apache Kafka cluster", error)
    except BaseException:
        cluster.stop()
        raise
    logs = " ".join(str(path) for path in cluster.log_paths)
    print(f"\nApache Kafka {cluster.version}, 3 nodes: {cluster.bootstrap}, logs {logs}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kafka_connect(apache_kafka: ApacheKafka, real_dir: Path) -> Iterator[KafkaConnect]:
    """A standalone Kafka Connect worker on ``apache_kafka``; REST at ``kafka_connect.url``."""
    worker = KafkaConnect(real_dir / "connect", apache_kafka)
    worker.start()
    print(f"\nKafka Connect: {worker.url}, log {worker.log_path}")
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def opensearch(java_available: None) -> Iterator[OpenSearch]:
    """One OpenSearch node (security off); REST at ``opensearch.url``."""
    import tempfile

    # Not under pytest's basetemp: as root the node runs as another account, which
    # must traverse every ancestor (see tests/conftest.py for PostgreSQL's case).
    root = Path(tempfile.mkdtemp(prefix="clickstream-os-"))
    node = OpenSearch(root / "node")
    try:
        node.start()
    except JvmUnavailableError as error:
        _unavailable("OpenSearch", error)
    print(f"\nOpenSearch {node.version}: {node.url}, log {node.log_path}")
    try:
        yield node
    finally:
        node.stop()
