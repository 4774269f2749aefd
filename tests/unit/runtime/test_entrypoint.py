"""``serve``: SIGTERM ends the process within the deadline whatever ``run`` does; exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from clickstream_runtime.entrypoint import (
    EXIT_FAILED,
    EXIT_SHUTDOWN_TIMEOUT,
    bounded,
    forced_exit_code,
)

# A service whose run() misbehaves as argv[1] says, with argv[2] as its shutdown deadline.
SERVICE = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    from clickstream_runtime import logs
    from clickstream_runtime.entrypoint import serve

    async def run(settings: str, stop: asyncio.Event) -> None:
        print("running", flush=True)
        if settings == "clean":
            await stop.wait()
        elif settings == "ignores_stop":
            await asyncio.Event().wait()
        elif settings == "blocks_loop":
            await stop.wait()
            time.sleep(60)  # a blocking call in the loop: no loop timer can fire
        elif settings == "thread_at_exit":
            await stop.wait()
            threading.Thread(target=time.sleep, args=(60,)).start()  # joined at exit
        elif settings == "done_but_a_thread_lingers":
            threading.Thread(target=time.sleep, args=(60,)).start()
        elif settings == "fails":
            raise RuntimeError("the stop policy said stop")

    logs.configure("test-service", fmt="json")
    serve(run, sys.argv[1], shutdown_deadline_s=float(sys.argv[2]))
    """
)


#: For the tests of the deadline itself: short, to keep them short.
SHORT_DEADLINE_S = 1.0
#: For every other test: a deadline no machine is slow enough to reach, so that what
#: they check (a clean exit, a second signal) never races the watchdog.
LONG_DEADLINE_S = 60.0


def start(behaviour: str, deadline_s: float = LONG_DEADLINE_S) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVICE, behaviour, str(deadline_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "running\n"  # the handlers are installed by now
    return process


def finish(process: subprocess.Popen[str]) -> tuple[int, float, list[dict[str, Any]]]:
    """Wait for the exit (bounded); return code, seconds taken and the JSON log lines."""
    started = time.monotonic()
    try:
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    lines = err.splitlines()
    events = [json.loads(line) for line in lines]  # every stderr line is JSON
    return process.returncode, time.monotonic() - started, events


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def test_sigterm_with_a_cooperative_run_exits_0() -> None:
    process = start("clean")
    process.send_signal(signal.SIGTERM)
    code, _, events = finish(process)
    assert code == 0
    assert names(events) == ["stop_requested"]
    assert events[0]["signal"] == "SIGTERM"


@pytest.mark.parametrize("behaviour", ["ignores_stop", "blocks_loop", "thread_at_exit"])
def test_sigterm_ends_a_run_that_does_not_stop_by_the_deadline(behaviour: str) -> None:
    process = start(behaviour, SHORT_DEADLINE_S)
    process.send_signal(signal.SIGTERM)
    code, seconds, events = finish(process)
    assert code == EXIT_SHUTDOWN_TIMEOUT
    assert names(events) == ["stop_requested", "shutdown_timeout"]
    assert events[1]["exit_code"] == EXIT_SHUTDOWN_TIMEOUT
    assert seconds < 10  # deadline 1 s: far below, even on a loaded machine


def test_a_finished_run_whose_process_does_not_end_is_ended_by_the_deadline() -> None:
    code, seconds, events = finish(start("done_but_a_thread_lingers", SHORT_DEADLINE_S))
    assert code == EXIT_SHUTDOWN_TIMEOUT
    assert names(events) == ["shutdown_timeout"]
    assert seconds < 10


def test_a_second_signal_exits_at_once() -> None:
    process = start("ignores_stop")
    process.send_signal(signal.SIGTERM)
    assert process.stderr is not None
    assert json.loads(process.stderr.readline())["event"] == "stop_requested"
    process.send_signal(signal.SIGINT)
    code, _, events = finish(process)
    assert code == forced_exit_code(signal.SIGINT) == 130
    assert names(events) == ["stop_forced"]


def test_a_failing_run_is_one_line_and_exit_1() -> None:
    process = start("fails")
    code, _, events = finish(process)
    assert code == EXIT_FAILED
    (event,) = events
    assert event["event"] == "service_failed"
    assert event["error"] == "RuntimeError: the stop policy said stop"


async def test_bounded_cancels_a_step_that_hangs_and_reports_a_failing_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def fails() -> None:
        raise ConnectionError("coordinator gone")

    async def works() -> int:
        return 1

    assert await bounded(hangs(), 0.05, "consumer_close") is False
    assert cancelled.is_set()
    assert await bounded(fails(), 1, "producer_flush") is False
    assert await bounded(works(), 1, "pool_close") is True
    err = capsys.readouterr()
    text = err.out + err.err
    assert "shutdown_step_timeout" in text
    assert "consumer_close" in text
    assert "ConnectionError: coordinator gone" in text
