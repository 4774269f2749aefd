"""The pipeline's console scripts as supervised subprocesses.

The demo, the benchmark and the tests launch ``clickstream-producer``,
``clickstream-aggregator`` and ``clickstream-report`` (an operator command of
clickstream-ops) from the same virtualenv as the running interpreter, each in
its own process group with its log in a file, and stop every one of them on
the way out, whatever happened.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import structlog

from clickstream_devstack.servers import processes

log = structlog.get_logger()


class ServiceDiedError(RuntimeError):
    """A service exited while it was supposed to be running."""


def script_path(name: str) -> Path:
    """A console script installed next to the running interpreter."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not installed in {path.parent} (run `make install`)")
    return path


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: a job meant to finish (a backfill): exiting 0 is success, not death
    finite: bool = False
    #: Set when we asked it to stop, so its exit is not reported as a death.
    stopping: bool = False

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def describe_exit(self) -> str:
        return (
            f"{self.name} exited with code {self.process.returncode}; last lines of "
            f"{self.log_path}:\n{processes.tail(self.log_path)}"
        )


class ServiceGroup:
    """Services launched into ``log_dir``; all of them are stopped on exit."""

    def __init__(self, log_dir: Path, *, cwd: Path | None = None) -> None:
        self.log_dir = Path(log_dir)
        # The cwd matters: a .env there would be read by the services' settings.
        self.cwd = Path(cwd) if cwd else self.log_dir
        self.services: list[Service] = []

    def launch(
        self,
        script: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str],
        name: str | None = None,
        finite: bool = False,
    ) -> Service:
        name = name or script
        log_path = self.log_dir / f"{name}.log"
        self.cwd.mkdir(parents=True, exist_ok=True)
        process = processes.spawn(
            [str(script_path(script)), *args], log_path=log_path, env=env, cwd=self.cwd
        )
        service = Service(name=name, process=process, log_path=log_path, finite=finite)
        self.services.append(service)
        log.info("service_started", service=name, pid=process.pid, log=str(log_path))
        return service

    def check_running(self) -> None:
        """Raise :class:`ServiceDiedError` if a launched service is no longer running."""
        for service in self.services:
            if service.stopping or service.running:
                continue
            if not (service.finite and service.process.returncode == 0):
                raise ServiceDiedError(service.describe_exit())

    def stop(self, service: Service, *, timeout: float = 30.0) -> int:
        """SIGTERM (the services finish their batch and commit), SIGKILL after ``timeout``."""
        service.stopping = True
        code = processes.stop(service.process, signum=signal.SIGTERM, timeout=timeout)
        log.info("service_stopped", service=service.name, exit_code=code)
        return code

    def stop_all(self, *, timeout: float = 30.0) -> dict[str, int]:
        """Stop every service still running; return each one's exit code.

        All get SIGTERM at once and share one deadline, so N replicas finishing
        their last batch take as long as the slowest, not the sum. Never raises
        for a stuck one: it is killed.
        """
        for service in self.services:
            if service.running and not service.stopping:
                service.stopping = True
                service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int] = {}
        for service in self.services:
            remaining = max(0.0, deadline - time.monotonic())
            # Signalled above: a second SIGTERM would mean "exit now" to our services.
            codes[service.name] = processes.stop(service.process, signum=None, timeout=remaining)
        log.info("services_stopped", exit_codes=codes)
        return codes

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()
