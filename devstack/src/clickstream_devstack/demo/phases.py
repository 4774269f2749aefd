"""The demo's phases after launch: starting, producing, catching up, stopping."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable

from rich.live import Live

from clickstream_devstack.demo.options import POLL_S, DemoError, DemoOptions
from clickstream_devstack.demo.progress import PipelineProgress, Snapshot
from clickstream_devstack.demo.screen import screen
from clickstream_devstack.servers import processes
from clickstream_devstack.services import Service, ServiceGroup

_START_TIMEOUT_S = 60.0


async def wait_started(
    producer: Service, progress: PipelineProgress, services: ServiceGroup, live: Live
) -> float:
    """When the live producer is ready to send (it logs ``producer_starting``): the
    ``--duration`` seconds of traffic count from there, not from its start-up."""
    since = time.monotonic()
    deadline = since + _START_TIMEOUT_S
    while '"event":"producer_starting"' not in producer.log_path.read_text(errors="replace"):
        services.check_running()
        if time.monotonic() > deadline:
            raise DemoError(f"the producer was not ready after {_START_TIMEOUT_S:.0f} s")
        snap = await progress.snapshot()
        live.update(screen("starting", f"{time.monotonic() - since:5.1f} s", snap))
        await asyncio.sleep(POLL_S / 5)
    return time.monotonic()


async def produce(
    options: DemoOptions,
    progress: PipelineProgress,
    services: ServiceGroup,
    live: Live,
    started: float,
    chaos_task: asyncio.Task[None] | None,
    watch: Callable[[], None],
) -> None:
    """The live phase: ``--duration`` seconds of traffic (and the chaos steps)."""
    try:
        while (elapsed := time.monotonic() - started) < options.duration:
            watch()
            if chaos_task is not None and chaos_task.done():
                chaos_task.result()  # raises what went wrong
            snap = await progress.snapshot()
            live.update(screen("producing", f"{elapsed:5.1f} s of {options.duration:g} s", snap))
            await asyncio.sleep(POLL_S)
        if chaos_task is not None:
            await chaos_task
    finally:
        if chaos_task is not None and not chaos_task.done():
            chaos_task.cancel()


async def catch_up(
    options: DemoOptions,
    progress: PipelineProgress,
    watch: Callable[[], None],
    live: Live,
) -> Snapshot:
    """Wait until every produced message is committed (two polls in a row, so a
    high watermark still in flight cannot end the wait early)."""
    since = time.monotonic()
    deadline = since + options.catch_up_timeout
    previous: tuple[int, int] | None = None
    while True:
        watch()
        snap = await progress.snapshot()
        live.update(
            screen(
                "catching up", f"{time.monotonic() - since:5.1f} s since the producer stopped", snap
            )
        )
        if snap.caught_up and (snap.produced, snap.committed) == previous:
            return snap
        if time.monotonic() > deadline:
            raise DemoError(
                f"the aggregators did not catch up within {options.catch_up_timeout:.0f} s: "
                f"{snap.committed:,} of {snap.produced:,} messages committed"
            )
        previous = (snap.produced, snap.committed)
        await asyncio.sleep(POLL_S)


def stop_replicas(replicas: list[Service], timeout: float = 30.0) -> list[tuple[Service, int]]:
    """One SIGTERM each, all at once, then wait for each (SIGKILL at the deadline).

    Exactly one signal: a second SIGTERM tells a service to give up its
    graceful stop and exit at once.
    """
    for replica in replicas:
        replica.stopping = True
        replica.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    codes = []
    for replica in replicas:
        try:
            code = replica.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = processes.kill(replica.process)
        codes.append((replica, code))
    return codes
