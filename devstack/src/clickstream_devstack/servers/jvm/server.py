"""One way to run a JVM server as a child: start, wait until ready, log, stop or kill.

Launched like the embedded servers (:class:`..child_server.ChildServer`):
its own session, stdout and stderr appended to its log file, a start whose
free-picked port was taken meanwhile retried on fresh ports; ``stop`` sends
SIGTERM (the JVM runs its shutdown hooks) and SIGKILLs the group after a
deadline; ``pause``/``resume`` freeze it the way a stalled host would.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import structlog

from clickstream_devstack.servers.child_server import ChildServer
from clickstream_devstack.servers.ports import free_port
from clickstream_devstack.servers.run_as import RunAs

log = structlog.get_logger()


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
        self._start_timeout = start_timeout
        self._ports: dict[str, int] | None = None

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
        requested, names = self._requested_ports, self.port_names
        self._start_on_ports(
            lambda: self._ports or {name: requested.get(name) or free_port() for name in names},
            self._launch,
            fixed=self._ports is not None or bool(requested),
        )
        return self

    def _launch(self, ports: dict[str, int]) -> None:
        self.prepare(ports)
        seconds = self._serve(
            self.argv(ports),
            ports[self.port_names[0]],
            lambda: self.answers(ports),
            what=self.name,
            env=self.environment(),
            cwd=self.work_dir,
            run_as=self.run_as(),
        )
        self._ports = ports
        log.info(f"{self.name}_started", ports=ports, pid=self.pid, seconds=round(seconds, 1))

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, SIGKILL after ``timeout``; the ports are kept for a restart."""
        self.resume()  # a frozen JVM cannot run its shutdown hooks
        self._stop(timeout=timeout)


def java_properties(values: Mapping[str, object]) -> str:
    """A ``.properties`` file body (values are ours: no escaping beyond backslashes)."""
    return "".join(
        f"{key}={str(value).replace(chr(92), chr(92) * 2)}\n" for key, value in values.items()
    )
