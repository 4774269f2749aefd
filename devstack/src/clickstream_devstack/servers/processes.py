"""Child processes that can always be found and reaped.

Every server and service runs in its own session (so its own process group):
Ctrl-C in the terminal reaches only the launcher, which then shuts the children
down in order; a final SIGKILL of the group and of every descendant leaves no
stray grandchild, even when the child crashed or hung.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil
import structlog

from clickstream_devstack.servers.run_as import RunAs

log = structlog.get_logger()


class ProcessExitedError(RuntimeError):
    """A child exited while we were waiting for it to become ready."""


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    run_as: RunAs | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    options = run_as.popen_options() if run_as else {}
    with log_path.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - argv is built by us, never by a shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            **options,
        )
    log.debug("process_started", program=Path(argv[0]).name, pid=process.pid, log=str(log_path))
    return process


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # The group id is the leader's pid (start_new_session); it outlives the leader
    # while any member is alive, which is exactly when we still need it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def kill(process: subprocess.Popen[bytes]) -> int:
    """SIGKILL the leader, its process group and all its descendants; reap the leader.

    Descendants are found explicitly because some servers move their workers to
    sessions of their own (PostgreSQL's backends call setsid), out of the group.
    """
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    _signal_group(process, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    code = process.wait()
    _gone, alive = psutil.wait_procs(descendants, timeout=10)
    if alive:
        log.warning("processes_survived_kill", pids=[child.pid for child in alive])
    return code


def stop(
    process: subprocess.Popen[bytes],
    *,
    signum: int | None = signal.SIGTERM,
    timeout: float = 15.0,
) -> int:
    """Ask the leader to stop with ``signum``; :func:`kill` everything after ``timeout`` s.

    Only the leader gets ``signum`` because servers (PostgreSQL above all) shut
    their own workers down in order and exit last; the group SIGKILL afterwards
    sweeps anything a well-behaved leader left in its group. ``signum=None``:
    the caller has signalled already (our services take a second signal as
    "exit now"), so only wait.
    """
    if process.poll() is None:
        try:
            if signum is not None:
                process.send_signal(signum)
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("process_stop_timeout", pid=process.pid, timeout_s=timeout)
            code = kill(process)
    else:
        code = process.returncode
    _signal_group(process, signal.SIGKILL)
    return code


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> float:
    """Poll ``ready`` with a short backoff until it is true; return the seconds it took.

    Fails fast with :class:`ProcessExitedError` if ``process`` dies meanwhile, and
    with :class:`TimeoutError` at the deadline.
    """
    started = time.monotonic()
    deadline = started + timeout
    delay = 0.005
    while True:
        if ready():
            return time.monotonic() - started
        if process is not None and process.poll() is not None:
            raise ProcessExitedError(
                f"{what}: process exited with code {process.returncode}{_log_hint(log_path)}"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s{_log_hint(log_path)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _log_hint(log_path: Path | None) -> str:
    if log_path is None:
        return ""
    return f" (see {log_path})\n{tail(log_path)}"


def tail(path: Path, lines: int = 15, *, window: int = 64 * 1024) -> str:
    """The last lines of a log file, for error messages that explain themselves."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - window))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def log_size(path: Path) -> int:
    """Where the next launch's lines will start in an appended-to log file."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def port_was_taken(path: Path, since: int) -> bool:
    """Did the server log, from offset ``since``, say its port was already bound?"""
    try:
        with path.open("rb") as handle:
            handle.seek(since)
            text = handle.read().decode(errors="replace")
    except OSError:
        return False
    return "in use" in text.lower()


def listens_on(process: subprocess.Popen[bytes], port: int) -> bool:
    """Is ``process`` itself listening on ``port``?

    A readiness probe alone could be answered by another server that already had
    the port; this makes sure the answer comes from the process we started.
    """
    try:
        connections = psutil.Process(process.pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections
    )
