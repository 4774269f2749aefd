"""The built images, run as containers against the embedded broker and PostgreSQL.

The ops image creates the topics, two aggregator containers share the
partitions, the producer container's events are applied exactly (every session
row equals the independent reference), the Dockerfile ``HEALTHCHECK`` passes,
``podman stop`` ends each service with exit 0 inside the grace period, and the
services run as uid 10001.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from clickstream_devstack.environment import Database, KafkaTopics, create_topics, service_env
from clickstream_devstack.images.build import IMAGES, BuildReport
from clickstream_devstack.images.containers import Container, run_options, run_to_end, start
from clickstream_devstack.images.podman import Podman
from clickstream_devstack.servers.broker import EmbeddedKafka
from clickstream_devstack.servers.ports import free_port
from support.aggregator import wait_applied
from support.feed import read_back, valid_events
from support.reference import differences, expected_rows, stored_rows

pytestmark = [pytest.mark.integration, pytest.mark.images, pytest.mark.timeout(1800)]

TAGS = {spec.service: spec.tag for spec in IMAGES}
EVENTS = 20_000
SEED = 12
PARTITIONS = 6
#: Compose's stop_grace_period for the services.
GRACE_S = 30.0
APP_UID = 10001


@pytest.fixture
def containers(podman: Podman) -> Iterator[list[Container]]:
    """Containers a test starts; force-removed afterwards, whatever happened."""
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()


def _name(role: str) -> str:
    return f"clickstream-test-{role}-{uuid.uuid4().hex[:8]}"


def _env(
    kafka: EmbeddedKafka, topics: KafkaTopics, database: Database, **extra: Any
) -> dict[str, str]:
    # base={}: the host's PATH, HOME and the like must not override the image's.
    return service_env(kafka, topics, database, base={}, **extra)


async def _until(what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        await asyncio.sleep(0.5)


def _healthy(container: Container) -> bool:
    assert container.running(), f"{container.name} exited:\n{container.logs()[-3000:]}"
    return container.healthcheck().returncode == 0


def _holdings(container: Container) -> set[int]:
    """The events partitions a replica holds now, from its assignment log events."""
    held: set[int] = set()
    for event in container.log_events():
        if event.get("event") == "partitions_revoked":
            held -= set(event["partitions"])
        elif event.get("event") == "partitions_assigned":
            held |= set(event["partitions"])
    return held


def _shared(replicas: list[Container]) -> bool:
    held = [_holdings(c) for c in replicas]
    every = set().union(*held)
    return all(held) and sum(map(len, held)) == len(every) == PARTITIONS


def _assert_runs_as_app_user(container: Container) -> None:
    # The host's view of the entrypoint process: rootful podman maps no uids.
    uids = psutil.Process(container.process_id()).uids()
    assert (uids.real, uids.effective) == (APP_UID, APP_UID), container.name


def _assert_stops_cleanly(container: Container) -> None:
    stopped = container.stop(GRACE_S)
    assert stopped.exit_code == 0, f"{container.name}:\n{container.logs()[-3000:]}"
    assert stopped.seconds < GRACE_S, stopped


def test_every_image_runs_as_uid_10001(built_images: BuildReport, podman: Podman) -> None:
    for tag in TAGS.values():
        result = podman.run(
            "run", "--rm", "--network", "none", *run_options(), "--entrypoint", "python", tag,
            "-c", "import os; print(os.getuid(), os.getgid())",
            timeout=120,
        )  # fmt: skip
        assert result.stdout.split() == [str(APP_UID), str(APP_UID)], tag


def test_the_report_ships_with_the_operator_tools_not_the_aggregator(
    built_images: BuildReport, podman: Podman
) -> None:
    def run(tag: str, entrypoint: str, *args: str) -> str:
        return podman.run(
            "run", "--rm", "--network", "none", *run_options(), "--entrypoint", entrypoint, tag,
            *args, timeout=120,
        ).stdout  # fmt: skip

    assert "--watch" in run(TAGS["ops"], "clickstream-report", "--help")
    # The aggregator's image carries neither the command nor its terminal UI libraries.
    carried = run(
        TAGS["aggregator"], "python", "-c",
        "import importlib.util as u, shutil; "
        "print(*[m for m in ('rich', 'sparklines') if u.find_spec(m)], "
        "shutil.which('clickstream-report'))",
    )  # fmt: skip
    assert carried.split() == ["None"]


async def test_two_aggregator_containers_apply_the_producer_container_exactly(
    built_images: BuildReport,
    podman: Podman,
    kafka: EmbeddedKafka,
    database: Database,
    containers: list[Container],
    tmp_path: Path,
) -> None:
    topics = KafkaTopics.unique(prefix="images", partitions=PARTITIONS)
    env = _env(kafka, topics, database)
    setup = run_to_end(
        podman, TAGS["ops"], name=_name("setup"), env=env,
        args=["kafka", "--partitions", str(PARTITIONS)], folder=tmp_path, timeout=180,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stdout + setup.stderr

    for replica in ("a", "b"):
        replica_env = {**env, "AGGREGATOR_REPLICA_ID": replica, "METRICS_PORT": str(free_port())}
        name = _name(f"aggregator-{replica}")
        containers.append(
            start(podman, TAGS["aggregator"], name=name, env=replica_env, folder=tmp_path)
        )
    for container in containers:
        await _until(f"{container.name} healthy", functools.partial(_healthy, container))
    await _until("partitions shared by both replicas", lambda: _shared(containers))

    produced = run_to_end(
        podman, TAGS["producer"], name=_name("producer"),
        env={**env, "METRICS_PORT": str(free_port())},
        args=["--events", str(EVENTS), "--rate", "0", "--seed", str(SEED)],
        folder=tmp_path, timeout=600,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stdout[-3000:] + produced.stderr[-3000:]

    messages = await read_back(kafka.bootstrap, topics.events, PARTITIONS)
    assert len(messages) == EVENTS
    await wait_applied(database.dsn, topics.group, topics.events, EVENTS, timeout=300)
    stored = await stored_rows(database.dsn)
    assert sum(row["total_events"] for row in stored.values()) == EVENTS
    assert differences(expected_rows(valid_events(messages)), stored) == []
    assert _shared(containers), [_holdings(c) for c in containers]

    for container in containers:
        assert _healthy(container)
        _assert_runs_as_app_user(container)
        _assert_stops_cleanly(container)


async def test_producer_container_is_healthy_and_stops_cleanly(
    built_images: BuildReport,
    podman: Podman,
    kafka: EmbeddedKafka,
    database: Database,
    containers: list[Container],
    tmp_path: Path,
) -> None:
    topics = KafkaTopics.unique(prefix="images", partitions=PARTITIONS)
    create_topics(kafka, topics)
    producer = start(
        podman, TAGS["producer"], name=_name("producer"),
        env=_env(kafka, topics, database, METRICS_PORT=free_port()),
        args=["--events", "0", "--rate", "50", "--seed", str(SEED)], folder=tmp_path,
    )  # fmt: skip
    containers.append(producer)
    await _until(f"{producer.name} healthy", lambda: _healthy(producer))
    _assert_runs_as_app_user(producer)
    _assert_stops_cleanly(producer)
