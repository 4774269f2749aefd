"""Charts as rich renderables: bars from rich, sparklines from the sparklines package."""

from __future__ import annotations

from collections.abc import Sequence

from rich.bar import Bar
from sparklines import sparklines  # type: ignore[import-untyped]


def sparkline(values: Sequence[float | None], width: int) -> str:
    """The last ``width`` values as one line of block characters; None is a gap.

    The scale starts at zero (so a quiet minute looks quiet, not average) and
    a series of zeros stays at the bottom line.
    """
    shown = list(values)[-width:] if width > 0 else []
    present = [v for v in shown if v is not None]
    if not present:
        return " " * len(shown)
    low = min(0.0, *present)
    high = max(present)
    if high <= low:
        high = low + 1
    [line] = sparklines(shown, minimum=low, maximum=high)
    return str(line)


def bar(value: float | None, maximum: float, width: int, color: str = "cyan") -> Bar:
    """A horizontal bar, ``value`` out of ``maximum``, ``width`` cells wide."""
    size = maximum if maximum > 0 else 1
    return Bar(size=size, begin=0, end=max(0.0, value or 0.0), width=width, color=color)
