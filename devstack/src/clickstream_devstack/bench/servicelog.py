"""Reading the services' JSON log lines (``LOG_FORMAT=json``) for their own timings.

A service's log events are the best clock we have: they are stamped where the
work happens, without the bench's polling interval or process start-up in the
way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True)
class LogEvent:
    name: str
    at: datetime
    fields: dict[str, Any]


def read_events(path: Path, names: Iterable[str] | None = None) -> Iterator[LogEvent]:
    """The JSON events in ``path`` (optionally only ``names``); other lines are skipped.

    Non-JSON lines exist (library warnings go through the stdlib logger), so a
    line that does not parse is not an error.
    """
    wanted = set(names) if names is not None else None
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if not line.startswith(b"{"):
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            name = record.get("event")
            stamp = record.get("timestamp")
            if not isinstance(name, str) or not isinstance(stamp, str):
                continue
            if wanted is not None and name not in wanted:
                continue
            yield LogEvent(name, datetime.fromisoformat(stamp), record)


def first(path: Path, name: str) -> LogEvent | None:
    return next(read_events(path, (name,)), None)


def last(path: Path, name: str) -> LogEvent | None:
    found = None
    for found in read_events(path, (name,)):  # noqa: B007 - the last one is the answer
        pass
    return found
