"""Which sections a screen shows: all of them, or as many as fit its height.

A watched report is redrawn in place; a frame taller than the terminal
scrolls, and the top of the report is lost at every refresh. So when fitting,
the core (header, charts, funnel, dead letters pending) is always shown and the
tables are added by priority while they fit; a last line names what was left
out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.text import Text

from clickstream_ops.report import charts, sections
from clickstream_ops.report.queries import Report


@dataclass(frozen=True)
class Section:
    name: str
    build: Callable[[Report, int], RenderableType]
    #: Lower is more important; 0 is always shown.
    priority: int


# In the order they are printed.
SECTIONS = (
    Section("header", sections.header, 0),
    Section("charts", charts.section, 0),
    Section("funnel", sections.funnel, 0),
    Section("dead letters pending", sections.dead_letters_pending, 0),
    Section("latest finished sessions", sections.latest_finished_sessions, 1),
    Section("top pages", sections.top_pages, 3),
    Section("hourly traffic", sections.hourly_traffic, 4),
    Section("devices", sections.devices, 2),
    Section("dead letters by reason", sections.dead_letters, 5),
    Section("totals", sections.totals, 6),
)

_GAP = 1  # a blank line between sections


def _height(console: Console, renderable: RenderableType) -> int:
    return len(console.render_lines(renderable, console.options, pad=False))


def _fit(
    console: Console, built: list[tuple[Section, RenderableType]], fit_height: int
) -> set[str]:
    """Names of the sections to show in ``fit_height`` lines, the last one kept for the cursor."""
    # Each section's lines plus the blank line before it (none before the first).
    heights = {s.name: _height(console, r) + _GAP for s, r in built}
    if sum(heights.values()) - _GAP <= fit_height - 1:
        return set(heights)
    # Not everything fits: one more line goes to the note on what was left out.
    budget = fit_height - 2 + _GAP
    chosen = {s.name for s, _ in built if s.priority == 0}
    used = sum(heights[name] for name in chosen)
    for s, _ in sorted(built, key=lambda pair: pair[0].priority):
        if s.name not in chosen and used + heights[s.name] <= budget:
            chosen.add(s.name)
            used += heights[s.name]
    return chosen


def build(console: Console, report: Report, *, fit_height: int | None = None) -> Group:
    """Every section, or (with ``fit_height``) those that fit in that many lines."""
    width = console.width
    built = [(s, s.build(report, width)) for s in SECTIONS]
    if fit_height is None:
        chosen = {s.name for s, _ in built}
        left_out: list[str] = []
    else:
        chosen = _fit(console, built, fit_height)
        left_out = [s.name for s, _ in built if s.name not in chosen]
    parts: list[RenderableType] = []
    for s, renderable in built:
        if s.name in chosen:
            if parts:
                parts.append(Text(""))
            parts.append(renderable)
    if left_out:
        parts.append(
            Text(
                f"Left out to fit {fit_height} lines: {', '.join(left_out)}"
                " (all of it: without --watch)",
                style="dim",
                no_wrap=True,
                overflow="ellipsis",
            )
        )
    return Group(*parts)
