"""The one way the dev stack launches a server, and what every server shares once launched.

Tansu, PostgreSQL and the JVM servers differ in their ports, their configuration,
their command line and their readiness probe (what a subclass provides). The
rest is the same for all: the ports picked free (or fixed by the caller, or kept
from the last launch, so that a restart keeps its addresses), the launch (own
session, log appended to ``log_path``, ready once the process itself listens and
answers), the retry of a launch whose free-picked port another process bound
first, finding it (``pid``, ``running``), crashing it (``kill``), freezing it
(``pause``/``resume``), stopping it and using it as a context manager. Built on
:mod:`clickstream_devstack.servers.processes`.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

import structlog

from clickstream_devstack.servers import processes
from clickstream_devstack.servers.ports import LOOPBACK, free_port
from clickstream_devstack.servers.run_as import RunAs

log = structlog.get_logger()

#: Launches of a server on free-picked ports before a taken port is an error.
PORT_ATTEMPTS = 3
Ports = TypeVar("Ports")


class ChildServer:
    """Subclasses say which ports to pick and how to configure, launch and probe one server."""

    #: The prefix of its log events (``<name>_started``, ``<name>_killed``, …).
    name: str = "server"
    host: str = LOOPBACK
    #: Where the current launch's lines start in ``log_path``.
    _log_start: int = 0
    _process: subprocess.Popen[bytes] | None = None

    def __init__(
        self,
        work_dir: Path,
        *,
        ports: Mapping[str, int] | None = None,
        start_timeout: float,
        log_path: Path | None = None,
    ) -> None:
        self.work_dir = Path(work_dir).absolute()
        self.log_path = log_path or self.work_dir / f"{self.name}.log"
        self._requested_ports = {k: v for k, v in (ports or {}).items() if v}
        self._start_timeout = start_timeout
        self._ports: dict[str, int] | None = None

    # -- what a subclass provides ---------------------------------------------

    @property
    def port_names(self) -> Sequence[str]:
        """The ports to pick; the first is the one whose listening means "started"."""
        return (self.name,)

    def setup(self) -> None:
        """Once per start, before any launch (default: create ``work_dir``)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Write configuration (and format storage) for a launch on ``ports``."""

    def argv(self, ports: Mapping[str, int]) -> list[str]:
        """The command line."""
        raise NotImplementedError

    def answers(self, ports: Mapping[str, int]) -> bool:
        """Is the server ready to serve (beyond listening on its first port)?"""
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The child's environment (default: ours)."""
        return None

    def run_as(self) -> RunAs | None:
        """The account to run as (default: ours)."""
        return None

    # -- state ------------------------------------------------------------------

    def bound_port(self, name: str | None = None) -> int:
        """The port ``name`` (default: the first) of the running or last launch."""
        if self._ports is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._ports[name or self.port_names[0]]

    def logged(self, text: str) -> bool:
        """Has the current launch written ``text`` to its log?"""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_start)
                return text.encode() in handle.read()
        except OSError:
            return False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- life cycle -------------------------------------------------------------

    def start(self) -> Self:
        if self.running:
            return self
        self.setup()
        requested, names = self._requested_ports, self.port_names
        self._start_on_ports(
            lambda: self._ports or {name: requested.get(name) or free_port() for name in names},
            self._launch_on,
            fixed=self._ports is not None or bool(requested),
        )
        return self

    def _launch_on(self, ports: dict[str, int]) -> None:
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
        log.info(f"{self.name}_started", ports=ports, pid=self.pid, seconds=round(seconds, 3))

    def _start_on_ports(
        self, pick: Callable[[], Ports], launch: Callable[[Ports], None], *, fixed: bool
    ) -> None:
        """``launch`` on the ports ``pick`` returns; retried on fresh ones if they were taken.

        A free port is released before the server binds it, so another process
        may take it in between: the server then exits saying so in its log.
        Ports the caller fixed, or kept from the last launch, are not retried.
        """
        attempts = 1 if fixed else PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            ports = pick()
            self._log_start = log_start = processes.log_size(self.log_path)
            try:
                launch(ports)
                return
            except processes.ProcessExitedError:
                if attempt == attempts or not processes.port_was_taken(self.log_path, log_start):
                    raise
                log.warning(f"{self.name}_retry", ports=ports, attempt=attempt)

    def _serve(
        self,
        argv: Sequence[str],
        port: int,
        answers: Callable[[], bool],
        *,
        what: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        run_as: RunAs | None = None,
    ) -> float:
        """Spawn ``argv`` and wait until it listens on ``port`` and ``answers``; the seconds taken.

        Listening is checked on the process itself, so that another server that had
        the port cannot answer for it. A process that exits or is not ready within
        the start timeout is killed and the error raised.
        """
        process = processes.spawn(argv, log_path=self.log_path, env=env, cwd=cwd, run_as=run_as)
        try:
            seconds = processes.wait_until(
                lambda: processes.listens_on(process, port) and answers(),
                what=what,
                timeout=self._start_timeout,
                process=process,
                log_path=self.log_path,
            )
        except BaseException:
            processes.kill(process)
            raise
        self._process = process
        return seconds

    def stop(self) -> None:
        """SIGTERM, SIGKILL the group after 30 s; the ports are kept for a restart."""
        self._stop(timeout=30.0)

    def _stop(self, *, timeout: float, signum: int = signal.SIGTERM, **fields: Any) -> None:
        """Stop with ``signum``, SIGKILL the group after ``timeout`` s; always reaped."""
        if self._process is None:
            return
        self.resume()  # a frozen server cannot run its shutdown
        code = processes.stop(self._process, signum=signum, timeout=timeout)
        log.info(f"{self.name}_stopped", pid=self._process.pid, exit_code=code, **fields)
        self._process = None

    def kill(self) -> None:
        """Crash the server (SIGKILL to its process group and every descendant)."""
        if self._process is None:
            return
        processes.kill(self._process)
        log.info(f"{self.name}_killed", pid=self._process.pid)
        self._process = None

    def pause(self) -> None:
        """SIGSTOP: the server stops answering but keeps its connections open."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
