"""The image tier: the three service images built once per session, or a loud skip.

Where podman cannot run (not installed, no runc, not root for debootstrap,
containers refused by the kernel), every test here is skipped with that reason
(``-ra`` prints it in the summary; ``pytest tests/images`` also in the header).
A build that fails once podman can start containers is an error, not a skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from clickstream_devstack.environment import Database
from clickstream_devstack.images.build import BuildReport, build_all, cache_dir
from clickstream_devstack.images.podman import Podman, PodmanUnavailableError
from clickstream_devstack.servers.postgres import EmbeddedPostgres


def pytest_report_header(config: pytest.Config) -> str:
    try:
        podman = Podman.find()
    except PodmanUnavailableError as error:
        return f"images tier: SKIPPED, {error}"
    return f"images tier: podman {podman.version()}, cache {cache_dir()}"


@pytest.fixture(scope="session")
def podman() -> Podman:
    try:
        return Podman.find()
    except PodmanUnavailableError as error:
        pytest.skip(f"images tier skipped: {error}")


@pytest.fixture(scope="session")
def built_images(podman: Podman, request: pytest.FixtureRequest) -> BuildReport:
    """Stand-in base, wheelhouse, then the Dockerfile's three targets (cached after a first run)."""
    try:
        report = build_all(podman)
    except PodmanUnavailableError as error:
        pytest.skip(f"images tier skipped: {error}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for line in report.lines():
            reporter.write_line(f"images: {line}")
    return report


@pytest.fixture
def database(postgres: EmbeddedPostgres) -> Iterator[Database]:
    """A fresh database on the session's PostgreSQL, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    yield Database.on(postgres, name)
    if postgres.running:
        postgres.drop_database(name)
