"""Worker processes for CPU-bound work beside a service's event loop.

Workers are spawned (never forked from a process that runs an event loop and
holds sockets), ignore SIGINT and SIGTERM (the service decides when to stop,
after finishing what it has in hand) and exit by themselves once the service's
process is gone, say after SIGKILL, so none outlives it. A worker that dies
breaks the pool: :func:`call` raises :class:`WorkerDied` for every call the
pool held, and the caller replaces the pool; what the death means is the
caller's to decide (the aggregator's answer is ``crash_pinning``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: How often a worker checks that the service's process is still its parent.
_PARENT_CHECK_S: Final = 1.0


def process_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes; ``initializer(*initargs)`` runs in each."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )


class WorkerDied(Exception):
    """A worker process ended while the pool held a call: the pool is broken, replace it."""

    def __init__(self, exit_codes: list[int] | None = None) -> None:
        #: Non-zero exit codes of the pool's processes (:func:`shut_down` returns them).
        self.exit_codes = exit_codes or []
        known = ", ".join(map(str, self.exit_codes)) or "not known yet"
        super().__init__(f"a worker process died (exit codes: {known})")


async def call(pool: ProcessPoolExecutor, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker; :class:`WorkerDied` if a worker of the pool dies."""
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, function, *args)
    except BrokenProcessPool:
        raise WorkerDied from None


async def shut_down(pool: ProcessPoolExecutor) -> list[int]:
    """Stop the workers; work still queued is dropped (nothing of it was delivered).

    Returns the non-zero exit codes of the pool's processes (negative: the
    signal; -9 is SIGKILL), for the logs after a death. The pool keeps its
    processes in a private attribute, hence the fallback to none.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
    return sorted(code for p in processes if (code := p.exitcode))


def _start_worker(
    parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _watch_parent(parent: int) -> None:
    # Reparenting is the portable sign that the parent died (no prctl needed).
    while True:
        time.sleep(_PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(0)
