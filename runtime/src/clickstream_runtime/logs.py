"""structlog set-up: one event name per line, JSON when not on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

# Keys whose values must never reach a log line, whatever a caller binds.
_SECRET_KEYS = frozenset({"password", "postgres_password", "secret", "token", "api_token"})


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        lowered = key.lower()
        if lowered in _SECRET_KEYS or lowered.endswith(("password", "_secret", "_token")):
            event_dict[key] = "**********"
    return event_dict


def _orjson_dumps(value: Any, default: Any = None) -> str:
    return orjson.dumps(value, default=default).decode()


def configure(service: str, *, level: str = "info", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    if use_json:
        processors += [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Library loggers (aiokafka, asyncpg) go through the stdlib: keep them quiet and on stderr.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s"
    )
