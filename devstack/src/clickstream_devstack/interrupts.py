"""Ctrl-C and SIGTERM for the long-running dev commands.

The first signal raises KeyboardInterrupt so ``finally`` blocks stop every child;
later ones are ignored, so an impatient second Ctrl-C cannot cut the clean-up
short and leave a server running.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


class Interrupts:
    def __init__(self) -> None:
        self.received: int | None = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            print("still stopping the services, please wait…", file=sys.stderr, flush=True)
            return
        self.received = signum
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        """The shell convention: 128 + the signal number."""
        return 128 + (self.received or signal.SIGINT)
