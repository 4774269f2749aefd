"""Put process-wide logging state back after a test that configures logging."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator

import structlog


@contextlib.contextmanager
def restored_logging() -> Iterator[None]:
    """``logs.configure`` changes structlog's configuration and context, the root
    logger's handlers and level, warnings capture and the exception hooks: each is as
    it was afterwards, and handlers added meanwhile are closed."""
    config = structlog.get_config()
    context = structlog.contextvars.get_contextvars()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = (sys.excepthook, threading.excepthook, sys.unraisablehook)
    try:
        yield
    finally:
        sys.excepthook, threading.excepthook, sys.unraisablehook = hooks
        logging.captureWarnings(False)
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        structlog.configure(**config)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**context)
        root.handlers[:] = handlers
        root.setLevel(level)
