"""Worker processes for CPU-bound work beside a service's event loop.

Workers are spawned (never forked from a process that runs an event loop and
holds sockets), ignore SIGINT and SIGTERM (the service decides when to stop,
after finishing what it has in hand) and exit by themselves once the service's
process is gone, say after SIGKILL, so none outlives it. A worker that dies
breaks the pool: the next call raises ``BrokenProcessPool`` and the service
stops (its policy for anything it cannot recover from).
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
from typing import Any, Final

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


async def shut_down(pool: ProcessPoolExecutor) -> None:
    """Stop the workers; work still queued is dropped (nothing of it was delivered)."""
    await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


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
