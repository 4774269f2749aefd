"""How single values read on screen: money, rates, counts, times and ages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

Formatter = Callable[[Any], str]

DASH = "–"


def number(value: Any, places: int = 2) -> str:
    return DASH if value is None else f"{float(value):,.{places}f}"


def integer(value: Any) -> str:
    return DASH if value is None else f"{int(value):,}"


def rate(value: Any) -> str:
    return DASH if value is None else f"{float(value):.1%}"


def money(value: Any) -> str:
    # Decimal keeps the cents exact; floats never touch money.
    return DASH if value is None else f"${Decimal(value):,.2f}"


def hour(value: Any) -> str:
    return value.strftime("%m-%d %H:00") if isinstance(value, datetime) else str(value)


def timestamp(value: Any) -> str:
    if not isinstance(value, datetime):
        return DASH if value is None else str(value)
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value.utcoffset() is not None else str(value)


def counts(value: Any) -> str:
    if not isinstance(value, dict):
        return str(value)
    return ", ".join(f"{name} {count}" for name, count in sorted(value.items()))


def seconds(value: float | None) -> str:
    """A duration for people: 0.4 s, 12 s, 5 min 3 s, 2 h 5 min, 3 d 4 h."""
    if value is None:
        return DASH
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 10:
        return f"{sign}{value:.1f} s"
    whole = round(value)
    if whole < 60:
        return f"{sign}{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{sign}{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d {hours} h"


NUMERIC: frozenset[Formatter] = frozenset({number, integer, rate, money})
# Values a table must never cut short: numbers and times.
WHOLE: frozenset[Formatter] = NUMERIC | {hour, timestamp}
