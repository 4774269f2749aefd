"""The times ``--since`` and ``--until`` accept (docs/verify.md lists the same forms).

* an ISO 8601 time with a UTC offset: ``2026-12-01T10:00Z``, ``2026-12-01T10:00:00+01:00``;
* a date, meaning its midnight UTC: ``2026-12-01``;
* ``now``, ``today`` or ``yesterday`` (midnight UTC);
* an age: ``90m``, ``2h``, ``3d`` (that long before now), with or without `` ago``.

A time without an offset is refused: the records' timestamps are UTC instants,
and guessing the zone would shift the range by hours.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Final

FORMS: Final = (
    "an ISO 8601 time with an offset (2026-12-01T10:00Z), a date (2026-12-01, UTC), "
    "now, today, yesterday, or an age such as 90m, 2h or 3d"
)
_AGE: Final = re.compile(r"^(\d+)\s*([smhd])(?:\s+ago)?$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class TimeError(ValueError):
    """Text that is none of the accepted forms; the message says which are."""


def parse_time(text: str, now: datetime) -> datetime:
    """``text`` as an aware datetime; ``now`` (aware) anchors the relative forms."""
    word = text.strip().lower()
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    relative = {"now": now, "today": midnight, "yesterday": midnight - timedelta(days=1)}
    if word in relative:
        return relative[word]
    age = _AGE.match(word)
    if age is not None:
        return now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            day = date.fromisoformat(text.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TimeError(f"{text!r} is not a time: use {FORMS}") from None
    if value.tzinfo is None:
        raise TimeError(f"{text!r} has no UTC offset: add one (2026-12-01T10:00Z) or use {FORMS}")
    return value
