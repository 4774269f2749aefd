"""The one entrypoint shape of every service, and its bounded stop.

``main()`` builds the settings, then ``serve(run, settings)`` runs
``run(settings, stop)`` on uvloop; SIGINT/SIGTERM set ``stop`` so the service
finishes its batch, commits and returns. Tests call ``run`` directly with their
own ``stop`` event.

Stopping is bounded whatever the servers do: once ``stop`` is set (by a signal
or by the service itself) or ``run`` returns, the process has
``shutdown_deadline_s`` (9 s by default, inside the usual 10 s grace of
orchestrators) to exit; past that, a watchdog thread logs ``shutdown_timeout`` and ends the
process, even if the event loop is blocked or a thread will not finish. A
second SIGINT/SIGTERM ends it at once (``stop_forced``).

Exit codes:

* ``0`` — ``run`` returned: a clean stop, or the work was done.
* ``1`` — ``run`` raised (``service_failed`` is logged with the error), or a
  configuration error (one ``configuration error: ...`` line on stderr).
* ``3`` — :data:`EXIT_SHUTDOWN_TIMEOUT`: the process did not end within the
  deadline after ``stop`` was set or ``run`` returned (``shutdown_timeout`` is
  logged); whatever was in flight was cut off.
* ``128 + signal`` — :func:`forced_exit_code`: a second signal ended the
  process at once (130 for SIGINT, 143 for SIGTERM), the shell's convention.

Each shutdown step of a service can be bounded on its own with :func:`bounded`,
so that one server that does not answer does not eat the others' time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import structlog
import uvloop

S = TypeVar("S")

log = structlog.get_logger()

#: Seconds between ``stop`` and the forced exit; below a 10 s SIGKILL grace.
SHUTDOWN_DEADLINE_S: Final = 9.0
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_SHUTDOWN_TIMEOUT: Final = 3


class Explained(Exception):
    """A failure its message says in full (what happened and what to do).

    :func:`serve` logs it as one ``service_failed`` line without a traceback: a
    refused password needs a fix, not 400 lines of stack.
    """


def forced_exit_code(signum: int) -> int:
    """The exit code after a second signal: ``128 + signum``, as a shell reports it."""
    return 128 + signum


async def bounded(aw: Awaitable[object], seconds: float, what: str) -> bool:
    """Await ``aw`` for at most ``seconds``; True if it finished in time and did not fail.

    For shutdown steps (close a consumer, flush a producer, close a pool): a step
    that times out is cancelled and logged as ``shutdown_step_timeout``, one that
    raises as ``shutdown_step_failed``; neither is raised, so the next step runs.
    A step that ignores its cancellation is left behind after a short grace.
    """
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.5, seconds))
        log.warning("shutdown_step_timeout", step=what, seconds=seconds)
        return False
    if task.cancelled():
        log.warning("shutdown_step_failed", step=what, error="cancelled")
        return False
    error = task.exception()
    if error is not None:
        log.warning("shutdown_step_failed", step=what, error=f"{type(error).__name__}: {error}")
        return False
    return True


class _Watchdog:
    """Ends the process ``deadline_s`` after ``arm()``, from a thread of its own.

    A thread, not a loop timer: the deadline must hold when the event loop is
    blocked, and while the interpreter waits for threads at exit.
    """

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.deadline_s, self._fire)
            self._timer.name = "shutdown-deadline"
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        log.error(
            "shutdown_timeout",
            deadline_s=self.deadline_s,
            exit_code=EXIT_SHUTDOWN_TIMEOUT,
            hint="a server or task did not stop in time; the process is ended",
        )
        _exit_now(EXIT_SHUTDOWN_TIMEOUT)


def _exit_now(code: int) -> None:
    for stream in (sys.stderr, sys.stdout):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


async def _with_signals(
    run: Callable[[S, asyncio.Event], Awaitable[None]], settings: S, watchdog: _Watchdog
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _on_signal, stop, signum, watchdog)
    arm_on_stop = asyncio.create_task(_arm_when_set(stop, watchdog))
    try:
        await run(settings, stop)
    finally:
        arm_on_stop.cancel()
        # From here on the process is ending: the loop's teardown (tasks, the
        # default executor's threads) and the interpreter's exit are bounded too.
        watchdog.arm()


async def _arm_when_set(stop: asyncio.Event, watchdog: _Watchdog) -> None:
    # The service may set stop itself (a fatal error, a finished backfill).
    await stop.wait()
    watchdog.arm()


def _on_signal(stop: asyncio.Event, signum: int, watchdog: _Watchdog) -> None:
    name = signal.Signals(signum).name
    if stop.is_set():
        code = forced_exit_code(signum)
        log.warning("stop_forced", signal=name, exit_code=code)
        _exit_now(code)
    log.info("stop_requested", signal=name, deadline_s=watchdog.deadline_s)
    stop.set()
    watchdog.arm()


def serve(
    run: Callable[[S, asyncio.Event], Awaitable[None]],
    settings: S,
    *,
    shutdown_deadline_s: float = SHUTDOWN_DEADLINE_S,
) -> None:
    """Run ``run(settings, stop)`` on uvloop with signal handling; see the exit codes above.

    Meant as the last thing a process does (the deadline stays armed through
    the interpreter's exit); tests call ``run`` directly instead.

    Returns when ``run`` returns (exit code 0 from ``main``); a failure of ``run``
    is logged as ``service_failed`` and exits with 1. ``SystemExit`` (a
    configuration error, a command's own message) passes through unchanged.
    """
    watchdog = _Watchdog(shutdown_deadline_s)
    try:
        uvloop.run(_with_signals(run, settings, watchdog))
    except Explained as error:  # said in full: no traceback
        log.error("service_failed", error=str(error))
        raise SystemExit(EXIT_FAILED) from None
    except Exception as error:  # the service's own stop policy: one line, exit 1
        log.error("service_failed", error=f"{type(error).__name__}: {error}", exc_info=True)
        raise SystemExit(EXIT_FAILED) from None
    # Interpreter exit still joins threads (executors): the armed watchdog bounds that too.
