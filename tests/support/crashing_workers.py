"""Decode workers that die on cue, with no test code in the product.

Spawned worker processes inherit the environment, and Python imports
``sitecustomize`` from ``PYTHONPATH`` when an interpreter starts. :func:`install`
writes one that acts only in multiprocessing's spawned children (their command
line ends with ``--multiprocessing-fork``; the test's own process started long
before and is untouched). There it wraps the contract's ``parse`` (which ``decode``
calls) and the fast decoder's:

* a value containing :data:`KILL` ends the process at once (``os._exit(70)``),
  as a crash in a native extension would;
* a value containing :func:`kills` ``(n)`` does so the first ``n`` times any
  worker meets it, and is decoded as usual from then on (a message that is
  blamed only if it kills the worker often enough);
* a value containing :data:`OVERFLOW` makes preparing fail with ``OverflowError``
  (a value the policy pins: the message is ``unstorable``);
* a value containing :data:`IN_WORKER` is refused as ``schema`` (so a test sees
  where a message was prepared: inline it is an ordinary event);
* the first value containing :data:`PAUSE` that any worker meets makes that
  worker write its pid to ``paused`` and sleep, so that the test can SIGKILL it
  in the middle of a batch, as the OOM killer would; later workers decode it as usual;
* while ``CLICKSTREAM_TEST_WORKER_START=die`` is in the environment, a worker
  exits (71) as soon as it starts.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

KILL: Final = "KILL-THE-DECODER"
PAUSE: Final = "PAUSE-THE-DECODER"
IN_WORKER: Final = "REFUSED-IN-A-WORKER"
#: Followed by a count: see :func:`kills`.
KILLS: Final = "KILLS-THE-DECODER-TIMES-"
OVERFLOW: Final = "OVERFLOW-IN-A-WORKER"
#: What a worker killed by :data:`KILL` exits with.
KILLED_EXIT: Final = 70

_SITECUSTOMIZE = f'''
import os
import re
import sys
import time

if "--multiprocessing-fork" in sys.orig_argv:
    if os.environ.get("CLICKSTREAM_TEST_WORKER_START") == "die":
        os._exit(71)
    import clickstream_schema
    import clickstream_schema.codec
    import clickstream_schema.fast_decode

    _kills = re.compile(rb"{KILLS}([0-9]+)")

    def kill_counted(value):
        """Exit if this is one of the first n meetings of a value marked to kill n times."""
        counted = _kills.search(value)
        if counted is None:
            return
        hooks = os.environ["CLICKSTREAM_TEST_HOOKS"]
        for kill in range(int(counted.group(1))):
            try:  # one file per kill: which ones are spent survives the deaths
                os.close(os.open(os.path.join(hooks, "killed-%d" % kill), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                continue
            os._exit({KILLED_EXIT})

    def hooked(value):
        if value and b"{KILL}" in value:
            os._exit({KILLED_EXIT})
        if value:
            kill_counted(value)
        if value and b"{OVERFLOW}" in value:
            raise OverflowError("a value preparing cannot hold")
        if value and b"{IN_WORKER}" in value:
            raise clickstream_schema.InvalidEvent("schema", "refused in a worker")
        if value and b"{PAUSE}" in value:
            flag = os.path.join(os.environ["CLICKSTREAM_TEST_HOOKS"], "paused")
            try:  # the first worker only
                os.close(os.open(flag + ".lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                with open(flag + ".tmp", "w") as out:
                    out.write(str(os.getpid()))
                os.rename(flag + ".tmp", flag)
                time.sleep(30)

    def hook(module, name):
        original = getattr(module, name)

        def parse(value, **kwargs):
            hooked(value)
            return original(value, **kwargs)

        setattr(module, name, parse)

    # The model's parse (decode calls it) and the aggregator's fast decoder's.
    hook(clickstream_schema.codec, "parse")
    hook(clickstream_schema, "parse")
    hook(clickstream_schema.fast_decode, "parse")
'''


def kills(times: int) -> str:
    """A marker that kills the first ``times`` workers meeting it (one such marker per test)."""
    return f"{KILLS}{times}"


@dataclass(frozen=True)
class WorkerHooks:
    directory: Path
    monkeypatch: pytest.MonkeyPatch

    def fail_starts(self) -> None:
        """Workers started from now on die at once."""
        self.monkeypatch.setenv("CLICKSTREAM_TEST_WORKER_START", "die")

    def paused_pid(self, timeout: float = 60.0) -> int:
        """The pid of the worker that paused on :data:`PAUSE` (waiting for it)."""
        flag = self.directory / "paused"
        deadline = time.monotonic() + timeout
        while not flag.exists():
            assert time.monotonic() < deadline, "no worker paused"
            time.sleep(0.05)
        return int(flag.read_text())

    def kill_paused(self, timeout: float = 60.0) -> int:
        """SIGKILL the worker that paused on :data:`PAUSE` (waiting for it); its pid."""
        pid = self.paused_pid(timeout)
        os.kill(pid, signal.SIGKILL)
        return pid


def install(directory: Path, monkeypatch: pytest.MonkeyPatch) -> WorkerHooks:
    """Workers started from now on carry the hooks (see the module doc)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{directory}{os.pathsep}{path}" if path else str(directory))
    monkeypatch.setenv("CLICKSTREAM_TEST_HOOKS", str(directory))
    monkeypatch.delenv("CLICKSTREAM_TEST_WORKER_START", raising=False)
    return WorkerHooks(directory, monkeypatch)
