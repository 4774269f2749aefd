"""How the report looks: charts and tables for people, one JSON document for programs."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Console

from clickstream_aggregator.report import layout
from clickstream_aggregator.report.queries import MONEY_COLUMNS, Report

_CENTS = Decimal("0.01")


def to_json(report: Report) -> str:
    """The report's data as JSON.

    Money (every column in MONEY_COLUMNS) is an exact decimal string with two
    places ("142.50"), the same everywhere; other numbers stay JSON numbers
    (rates are fractions rounded to 4 places by the views); times are ISO 8601.
    """
    return json.dumps(_jsonable(report.sections()), sort_keys=False)


def _jsonable(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, key) for v in value]
    if key in MONEY_COLUMNS and value is not None:
        return str(Decimal(value).quantize(_CENTS))
    if isinstance(value, Decimal):
        # NUMERIC from PostgreSQL (counts summed, averages, rounded rates).
        # Whole numbers without a fraction part stay integers.
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


#: Cursor to the top-left corner; erase to the end of the line; erase below the cursor.
_HOME, _ERASE_LINE, _ERASE_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"


def draw_frame(console: Console, report: Report, *, fit_height: int) -> None:
    """One ``--watch`` frame over the last, in a single write and without clearing first.

    Clearing and then printing leaves the screen blank while the frame is being
    written (a watcher saw blank frames); drawing over the old one and erasing
    only what it leaves behind (each line's tail, the lines below) never does.
    """
    if not console.is_terminal:  # a pipe or a file: frames one after another
        print_report(console, report, fit_height=fit_height)
        return
    with console.capture() as captured:
        print_report(console, report, fit_height=fit_height)
    frame = captured.get().rstrip("\n").replace("\n", f"{_ERASE_LINE}\n")
    console.file.write(f"{_HOME}{frame}{_ERASE_LINE}{_ERASE_BELOW}")
    console.file.flush()


def print_report(console: Console, report: Report, *, fit_height: int | None = None) -> None:
    """Print every section, or with ``fit_height`` only what fits in that many lines."""
    console.print(layout.build(console, report, fit_height=fit_height))
