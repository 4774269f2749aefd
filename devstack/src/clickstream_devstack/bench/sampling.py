"""A sampler that runs in a thread of its own, every ``interval`` seconds, while in its ``with``.

A thread, not an asyncio task: a blocking call in the bench's event loop must
not leave a gap in the samples at a window's edges. Subclasses say what one
sample is (:meth:`sample`) and whether one more is taken on leaving
(``sample_on_exit``: the CPU sampler needs a sample after its window closes).
"""

from __future__ import annotations

import threading
from typing import ClassVar, Self


class ThreadSampler:
    """Calls :meth:`sample` every ``interval`` seconds in a daemon thread."""

    #: Take one more sample after the thread stopped, whatever the interval.
    sample_on_exit: ClassVar[bool] = False

    def __init__(self, *, name: str, interval: float = 0.2) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.sample_on_exit:
            self.sample()
