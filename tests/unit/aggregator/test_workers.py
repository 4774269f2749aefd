"""Decode workers never outlive the service, whatever way it ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

# A stand-in service: starts the pool, reports its children, then waits forever.
_SERVICE = """
import asyncio, psutil
from clickstream_aggregator.workers import Preparer

async def main():
    async with Preparer("t", max_bytes=1024, workers=1):
        children = psutil.Process().children()
        workers = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
        print("children", len(workers), *(c.pid for c in children), flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_workers_exit_when_the_service_is_killed() -> None:
    service = subprocess.Popen([sys.executable, "-c", _SERVICE], stdout=subprocess.PIPE)
    try:
        assert service.stdout is not None
        line = b""
        while not line.startswith(b"children"):  # after the service's own log lines
            line = service.stdout.readline()
            assert line, "the service ended before starting its workers"
        workers, *children = (int(n) for n in line.split()[1:])
        # The worker is running before the first batch (and multiprocessing's
        # resource tracker beside it).
        assert workers == 1
        assert not any(_gone(pid) for pid in children)
        service.send_signal(signal.SIGKILL)
        service.wait(timeout=10)
        deadline = time.monotonic() + 15
        while not all(_gone(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in children if not _gone(pid)] == []
    finally:
        service.kill()
        service.wait(timeout=10)
