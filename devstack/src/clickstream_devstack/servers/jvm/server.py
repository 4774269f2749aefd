"""One way to run a JVM server as a child: start, wait until ready, log, stop or kill.

Built on :mod:`clickstream_devstack.servers.processes` like the embedded servers: the
server runs in its own session with stdout and stderr appended to its log file;
a start whose free-picked port was taken meanwhile is retried on fresh ports;
``stop`` sends SIGTERM (the JVM runs its shutdown hooks) and SIGKILLs the group
after a deadline; ``pause``/``resume`` freeze it the way a stalled host would.
"""

from __future__ import annotations

import abc
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import structlog

from clickstream_devstack.servers import processes
from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.ports import LOOPBACK, free_port
from clickstream_devstack.servers.run_as import RunAs

log = structlog.get_logger()

_PORT_ATTEMPTS = 3


class JvmServer(ChildServer):
    """Subclasses say how to configure, launch and probe one server."""

    #: Short name used for the log file (``<work_dir>/<name>.log``) and log events.
    name = "server"

    def __init__(
        self,
        work_dir: Path,
        *,
        ports: Mapping[str, int] | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.work_dir = Path(work_dir).absolute()
        self._requested_ports = dict(ports or {})
        self.log_path = self.work_dir / f"{self.name}.log"
        self.host = LOOPBACK
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._ports: dict[str, int] | None = None
        self._log_start = 0

    # -- what a subclass provides ---------------------------------------------

    @property
    @abc.abstractmethod
    def port_names(self) -> Sequence[str]:
        """The ports to pick; the first is the one whose listening means "started"."""

    @abc.abstractmethod
    def prepare(self, ports: Mapping[str, int]) -> None:
        """Write configuration (and format storage) for a launch on ``ports``."""

    @abc.abstractmethod
    def argv(self, ports: Mapping[str, int]) -> list[str]:
        """The command line."""

    @abc.abstractmethod
    def answers(self, ports: Mapping[str, int]) -> bool:
        """Is the server ready to serve (beyond listening on its first port)?"""

    def environment(self) -> dict[str, str] | None:
        """The child's environment (default: ours)."""
        return None

    def run_as(self) -> RunAs | None:
        """The account to run as (default: ours)."""
        return None

    # -- state ------------------------------------------------------------------

    def port(self, name: str) -> int:
        if self._ports is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._ports[name]

    def logged(self, text: str) -> bool:
        """Has the current launch written ``text`` to its log?"""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_start)
                return text.encode() in handle.read()
        except OSError:
            return False

    # -- life cycle -------------------------------------------------------------

    def start(self) -> Self:
        if self.running:
            return self
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            ports = self._ports or {
                name: self._requested_ports.get(name) or free_port() for name in self.port_names
            }
            self._log_start = processes.log_size(self.log_path)
            try:
                self._launch(ports)
            except processes.ProcessExitedError:
                # Someone bound a free-picked port before the server did: try others.
                taken = processes.port_was_taken(self.log_path, self._log_start)
                fixed = self._ports is not None or self._requested_ports
                if attempt == _PORT_ATTEMPTS or not taken or fixed:
                    raise
                log.warning(f"{self.name}_retry", ports=ports, attempt=attempt)
                continue
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, ports: dict[str, int]) -> None:
        self.prepare(ports)
        process = processes.spawn(
            self.argv(ports),
            log_path=self.log_path,
            env=self.environment(),
            cwd=self.work_dir,
            run_as=self.run_as(),
        )
        seconds = processes.wait_serving(
            process,
            ports[self.port_names[0]],
            lambda: self.answers(ports),
            what=self.name,
            timeout=self._start_timeout,
            log_path=self.log_path,
        )
        self._process, self._ports = process, ports
        log.info(f"{self.name}_started", ports=ports, pid=process.pid, seconds=round(seconds, 1))

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, SIGKILL after ``timeout``; the ports are kept for a restart."""
        if self._process is None:
            return
        self.resume()  # a frozen JVM cannot run its shutdown hooks
        code = processes.stop(self._process, timeout=timeout)
        log.info(f"{self.name}_stopped", pid=self._process.pid, exit_code=code)
        self._process = None


def java_properties(values: Mapping[str, object]) -> str:
    """A ``.properties`` file body (values are ours: no escaping beyond backslashes)."""
    return "".join(
        f"{key}={str(value).replace(chr(92), chr(92) * 2)}\n" for key, value in values.items()
    )
