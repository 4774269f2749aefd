"""The one way the dev stack launches a server, and what every server shares once launched.

Tansu, PostgreSQL and the JVM servers differ in their command line and their
readiness probe. Launching is the same for all (:meth:`ChildServer._serve`: own
session, log appended to ``log_path``, ready once the process itself listens and
answers), and so is the retry of a launch whose free-picked port another process
bound first (:meth:`ChildServer._start_on_ports`); so are finding it (``pid``,
``running``), crashing it (``kill``), freezing it (``pause``/``resume``),
stopping it and using it as a context manager. Built on
:mod:`clickstream_devstack.servers.processes`.
"""

from __future__ import annotations

import abc
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

import structlog

from clickstream_devstack.servers import processes
from clickstream_devstack.servers.ports import LOOPBACK
from clickstream_devstack.servers.run_as import RunAs

log = structlog.get_logger()

#: Launches of a server on free-picked ports before a taken port is an error.
PORT_ATTEMPTS = 3
Ports = TypeVar("Ports")


class ChildServer(abc.ABC):
    #: The prefix of its log events (``<name>_started``, ``<name>_killed``, …).
    name: str = "server"
    host: str = LOOPBACK
    log_path: Path
    _start_timeout: float
    #: Where the current launch's lines start in ``log_path``.
    _log_start: int = 0
    _process: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def start(self) -> Self: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def _start_on_ports(
        self, pick: Callable[[], Ports], launch: Callable[[Ports], None], *, fixed: bool
    ) -> None:
        """``launch`` on the ports ``pick`` returns; retried on fresh ones if they were taken.

        A free port is released before the server binds it, so another process
        may take it in between: the server then exits saying so in its log.
        Ports the caller fixed are not retried.
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

    def _stop(self, *, timeout: float, signum: int = signal.SIGTERM, **fields: Any) -> None:
        """Stop with ``signum``, SIGKILL the group after ``timeout`` s; always reaped."""
        if self._process is None:
            return
        code = processes.stop(self._process, signum=signum, timeout=timeout)
        log.info(f"{self.name}_stopped", pid=self._process.pid, exit_code=code, **fields)
        self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

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
