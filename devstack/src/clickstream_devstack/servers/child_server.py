"""What every server the dev stack runs shares once launched: its child process.

Tansu, PostgreSQL and the JVM servers differ in how they start and stop; once
one runs, finding it (``pid``, ``running``), crashing it (``kill``), freezing
it (``pause``/``resume``) and using it as a context manager are the same.
Each is built on :mod:`clickstream_devstack.servers.processes`.
"""

from __future__ import annotations

import abc
import signal
import subprocess
from types import TracebackType
from typing import Self

import structlog

from clickstream_devstack.servers import processes

log = structlog.get_logger()


class ChildServer(abc.ABC):
    #: The prefix of its log events (``<name>_killed``, …).
    name: str = "server"
    _process: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def start(self) -> Self: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
