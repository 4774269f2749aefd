"""Run the built images against the local servers: host network, env file, bounded stop.

Containers use ``--network host`` so they reach the embedded broker and
PostgreSQL on 127.0.0.1 exactly as the processes launched by the fixtures do.
The environment goes in through a private ``--env-file`` (not the command line,
where ``ps`` would show the database password).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickstream_devstack.images.podman import Podman, PodmanCommandError, ulimit_options


@dataclass(frozen=True)
class Stopped:
    """How a container ended under ``podman stop``."""

    exit_code: int
    seconds: float


@dataclass(frozen=True)
class Container:
    """A container started detached by :func:`start`."""

    podman: Podman
    name: str

    def logs(self) -> str:
        result = self.podman.run("logs", self.name, timeout=60)
        return result.stdout + result.stderr

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines (``LOG_FORMAT=json``), in order; other lines are skipped."""
        events = []
        for line in self.logs().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events

    def state(self) -> dict[str, Any]:
        result = self.podman.run("inspect", "--format", "{{json .State}}", self.name, timeout=60)
        state: dict[str, Any] = json.loads(result.stdout)
        return state

    def running(self) -> bool:
        return bool(self.state().get("Running"))

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """Run the image's ``HEALTHCHECK`` once (exit 0 = healthy)."""
        return self.podman.run("healthcheck", "run", self.name, timeout=60, check=False)

    def process_id(self) -> int:
        """The host pid of the container's main process (its entrypoint)."""
        return int(self.state()["Pid"])

    def stop(self, grace_s: float) -> Stopped:
        """SIGTERM, SIGKILL after ``grace_s``; the exit code says which one ended it."""
        started = time.monotonic()
        self.podman.run("stop", "--time", str(int(grace_s)), self.name, timeout=grace_s + 60)
        seconds = time.monotonic() - started
        return Stopped(exit_code=int(self.state()["ExitCode"]), seconds=seconds)

    def remove(self) -> None:
        self.podman.run("rm", "--force", "--time", "0", self.name, timeout=120, check=False)


def run_options() -> list[str]:
    """What every ``podman run`` here needs besides the network and the environment."""
    # The HEALTHCHECK stays in the container; its interval timer needs systemd,
    # which these machines lack, so it is run on demand (Container.healthcheck).
    return ["--health-interval", "disable", *ulimit_options()]


def _run_options(env_file: Path) -> list[str]:
    return ["--network", "host", "--env-file", str(env_file), *run_options()]


@contextlib.contextmanager
def env_file(folder: Path, env: Mapping[str, str]) -> Iterator[Path]:
    """``KEY=value`` lines in a file only its owner reads, removed afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"env-{uuid.uuid4().hex[:8]}"
    for key, value in env.items():
        if "\n" in value:
            raise ValueError(f"{key}: an env file cannot carry a newline")
    path.touch(mode=0o600)
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def start(
    podman: Podman,
    image: str,
    *,
    name: str,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    folder: Path,
) -> Container:
    """``podman run --detach`` (the env file is read at creation, then removed)."""
    with env_file(folder, env) as path:
        podman.run(
            "run", "--detach", "--name", name, *_run_options(path), image, *args, timeout=120
        )
    return Container(podman, name)


def run_to_end(
    podman: Podman,
    image: str,
    *,
    name: str,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    folder: Path,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` in the foreground: the command's exit status and output."""
    with env_file(folder, env) as path:
        try:
            return podman.run(
                "run", "--rm", "--name", name, *_run_options(path), image, *args,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as error:
            Container(podman, name).remove()
            raise PodmanCommandError(f"{name}: still running after {timeout}s") from error
