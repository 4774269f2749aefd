"""structlog set-up: one event per line, JSON when not on a terminal, library lines included.

Our own events are structlog events (``log.info("batch_committed", rows=n)``).
Libraries (aiokafka, asyncpg, asyncio, httpx...) log through the stdlib: their
records go through structlog's ``ProcessorFormatter`` with the same processors
and renderer, so in JSON mode every line is one JSON object whatever wrote it,
with ``logger`` naming the library and ``event`` its message. Python warnings
and exceptions that nothing caught (main thread, other threads, "exception
ignored" in finalizers) are logged the same way.

Libraries log at WARNING and above only; a few aiokafka errors that every
normal start produces, and that the client retries or the service reports in
its own words, are INFO (:class:`ExpectedLibraryErrors`). A library warning that repeats
(aiokafka's connection errors while a broker is down, ~40 a second) is printed
once, then summarised once per ``repeat_interval_s`` with ``repeated=N`` (see
:mod:`clickstream_runtime.log_repeats`).

What cannot be JSON: a configuration error found before logging is configured
(its format is a setting) is one plain ``configuration error: ...`` line.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import orjson
import structlog

from clickstream_runtime.log_repeats import CollapsingHandler

# Keys whose values must never reach a log line, whatever a caller binds.
_SECRET_KEYS = frozenset({"password", "postgres_password", "secret", "token", "api_token"})

#: Default interval over which a repeated library warning is printed once.
REPEAT_INTERVAL_S = 10.0

log = structlog.get_logger()


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        lowered = key.lower()
        if lowered in _SECRET_KEYS or lowered.endswith(("password", "_secret", "_token")):
            event_dict[key] = "**********"
    return event_dict


def _orjson_dumps(value: Any, default: Any = None) -> str:
    return orjson.dumps(value, default=default).decode()


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write.

    Loggers cached on first use keep their stream; this keeps them on the
    process's real stderr even if it is replaced later (test capture does).
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _service_default(service: str) -> Any:
    # Records from threads started before configure() lack the context variable.
    def add(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def configure(
    service: str,
    *,
    level: str = "info",
    fmt: str = "auto",
    repeat_interval_s: float = REPEAT_INTERVAL_S,
) -> None:
    """Set up structlog and the stdlib root logger for this process (idempotent)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _service_default(service),
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer: list[Any]
    if use_json:
        renderer = [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=shared + renderer,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    _route_stdlib(shared, renderer, max(logging.WARNING, numeric_level), repeat_interval_s)
    _log_uncaught()


def _route_stdlib(
    shared: list[Any], renderer: list[Any], level: int, repeat_interval_s: float
) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(allow=("repeated", "repeated_window_s")),
            *shared,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = CollapsingHandler(_CurrentStderr(), repeat_interval_s)
    handler.setFormatter(formatter)
    handler.addFilter(ExpectedLibraryErrors(show_info=level <= logging.INFO))
    root = logging.getLogger()
    for old in root.handlers[:]:
        # Ours from an earlier configure(), or basicConfig's plain-text one; a test
        # framework's capturing handlers (subclasses) stay.
        if isinstance(old, CollapsingHandler) or type(old) is logging.StreamHandler:
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # Library loggers that print on their own (handlers of their own, no
    # propagation) would bypass the formatter: send them to the root instead.
    for name, candidate in logging.root.manager.loggerDict.items():
        if isinstance(candidate, logging.Logger) and name.split(".")[0] in _SELF_PRINTING:
            candidate.handlers.clear()
            candidate.propagate = True
    logging.captureWarnings(True)


class ExpectedLibraryErrors(logging.Filter):
    """aiokafka's error lines that a normal start writes, as INFO (dropped below INFO).

    * ``Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError``
      (and the other retriable coordinator answers): Apache Kafka answers so while
      its offsets topic is created or loaded; the client retries, and the
      service's readiness says when partitions are not assigned.
    * ``Unexpected error during InitProducerIdRequest: UnknownError``: a broker
      without transactions or idempotence (the embedded test broker) answering
      a transactional or idempotent producer; the aggregator's relay then logs
      ``dead_letter_fencing_unavailable`` and the producer stops with a hint.

    Anything else aiokafka says at ERROR stays an error.
    """

    def __init__(self, *, show_info: bool) -> None:
        super().__init__()
        self.show_info = show_info

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and _expected(record):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return self.show_info
        return True


def _expected(record: logging.LogRecord) -> bool:
    if not record.name.startswith("aiokafka"):
        return False
    args = record.args if isinstance(record.args, tuple) else ()
    cause = args[0] if args else None
    if record.msg == "Group Coordinator Request failed: %s":
        return bool(getattr(cause, "retriable", False))
    if record.msg == "Unexpected error during InitProducerIdRequest: %s":
        return getattr(cause, "__name__", "") == "UnknownError"
    return False


# Servers that install their own plain-text handlers (uvicorn's dictConfig does).
_SELF_PRINTING = frozenset({"uvicorn", "gunicorn", "hypercorn", "aiohttp"})


def _log_uncaught() -> None:
    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        log.critical("uncaught_exception", exc_info=(kind, value, tb))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        log.error(
            "thread_exception",
            thread=args.thread.name if args.thread else None,
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        )

    def unraisablehook(unraisable: Any) -> None:
        log.warning(
            "exception_ignored",
            message=unraisable.err_msg or "Exception ignored in",
            object=repr(unraisable.object),
            exc_info=(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback),
        )

    # Only hooks still at Python's default are replaced: one a test framework or
    # a debugger installed stays theirs (ours from an earlier configure() too).
    if sys.excepthook is sys.__excepthook__ or getattr(sys.excepthook, _OURS, False):
        sys.excepthook = _ours(excepthook)
    if threading.excepthook is threading.__excepthook__ or getattr(
        threading.excepthook, _OURS, False
    ):
        threading.excepthook = _ours(thread_excepthook)
    if sys.unraisablehook is sys.__unraisablehook__ or getattr(sys.unraisablehook, _OURS, False):
        sys.unraisablehook = _ours(unraisablehook)


_OURS = "_clickstream_log_hook"
_F = TypeVar("_F", bound=Callable[..., None])


def _ours(hook: _F) -> _F:
    setattr(hook, _OURS, True)
    return hook
