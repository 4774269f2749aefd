"""Test-suite wiring: markers, ``--run-soak`` and the session's embedded servers.

The broker and PostgreSQL start at most once per session, and only when a test
asks for them; the fixtures that hand out per-test topics and databases live in
``tests/integration/conftest.py``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clickstream_devstack.broker import EmbeddedKafka
from clickstream_devstack.postgres import EmbeddedPostgres

INTEGRATION_DIR = Path(__file__).parent / "integration"
# A test that asks for any of these talks to a real server.
SERVER_FIXTURES = frozenset(
    {"kafka", "postgres", "database", "topics", "topic", "make_topics", "service_env", "services"}
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
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    """One Tansu broker for the session; tests isolate themselves with unique topics."""
    broker = EmbeddedKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One non-durable PostgreSQL for the session; tests isolate themselves with databases."""
    # Not under pytest's basetemp: that is 0700 and, as root, the server account
    # could not reach it without widening pytest's own directory.
    root = Path(tempfile.mkdtemp(prefix="clickstream-pg-"))
    server = EmbeddedPostgres(root / "data", durable=False)
    try:
        server.start()
        yield server
    finally:
        # The data is throw-away: no shutdown checkpoint needed.
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
