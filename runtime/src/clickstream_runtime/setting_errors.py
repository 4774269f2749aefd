"""Invalid settings in the user's words: every problem at once, named as the user typed it.

pydantic reports ``ProducerSettings: Value error, ...`` or ``producer_rate:
Input should be greater than or equal to 0``; a person set ``--rate -5`` or
``PRODUCER_RATE=-5``. :func:`problems` turns a ``ValidationError`` into one
line per problem: the flag when the value came from a command-line flag, else
the environment variable; the value given (never for secrets); and what is
expected, in plain words.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

_MAX_SHOWN = 60
_SECRET_PARTS = ("password", "secret", "token", "key_password")


def problems(
    error: ValidationError,
    *,
    flags: Mapping[str, str] | None = None,
    from_flags: Collection[str] = (),
) -> list[str]:
    """One ``NAME VALUE: what is wrong`` line per problem, in pydantic's order.

    ``flags`` maps a field name to the flag that sets it (``{"producer_rate":
    "--rate"}``); a field in ``from_flags`` (the fields the command line set)
    is named by its flag, any other by its environment variable.
    """
    flags = flags or {}
    lines: list[str] = []
    for detail in error.errors(include_url=False):
        field = str(detail["loc"][0]) if detail["loc"] else None
        text = _plain(detail)
        if field is None:
            # A rule across fields: its message names the variables itself.
            lines.append(text)
            continue
        by_flag = field in from_flags and field in flags
        name = flags[field] if by_flag else field.upper()
        # Our validators' messages quote the offending part themselves.
        own_words = detail["type"] == "value_error"
        shown = _shown(field, detail.get("input"), missing=detail["type"] == "missing" or own_words)
        separator = " " if by_flag else "="
        lines.append(f"{name}{separator}{shown}: {text}" if shown else f"{name}: {text}")
    return lines


def _shown(field: str, value: Any, *, missing: bool) -> str:
    if missing or value is None or isinstance(value, dict):
        return ""
    if any(part in field.lower() for part in _SECRET_PARTS):
        return "**********"
    text = str(value)
    # Never echo credentials someone put in a URL.
    text = re.sub(r"//[^@/\s]*@", "//***@", text)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 1] + "…"
    return repr(text) if (not text or text != text.strip() or " " in text) else text


def _plain(detail: ErrorDetails) -> str:  # noqa: PLR0911 - one return per kind of error
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        # Our own validators' messages are already written for people.
        return str(ctx["error"])
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {_number(ctx[key])}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type", "decimal_parsing"):
        return "must be a number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false (also 1/0, yes/no, on/off)"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "missing":
        return "is required"
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"must be at least {least} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind.startswith(("datetime", "date")) or kind == "timezone_aware":
        return "must be an ISO 8601 date-time with a UTC offset, e.g. 2026-03-01T12:00:00+00:00"
    if kind.startswith("path"):
        return "must be a file path"
    # Anything else: pydantic's sentence, without its "Input should" voice.
    message = re.sub(r"^(Value error|Assertion failed), ", "", detail["msg"])
    return re.sub(r"^Input should be", "must be", message)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
