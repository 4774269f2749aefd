"""The live display: three lines, each number what its label says."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from clickstream_devstack.demo.progress import Snapshot


def screen(phase: str, seconds: str, snap: Snapshot) -> RenderableType:
    freshness = "–" if snap.freshness_s is None else f"{snap.freshness_s:.1f} s"
    return Group(
        Text.assemble((f"{phase:<12}", "bold cyan"), seconds),
        Text.assemble(
            "produced ",
            (f"{snap.produced:,}", "bold"),
            " · committed ",
            (f"{snap.committed:,}", "bold"),
            f" · lag {snap.lag:,} · applied ",
            (f"{snap.applied:,}", "bold green"),
            f" events · {snap.sessions:,} sessions · {snap.dead_letters:,} dead letters",
        ),
        Text.assemble(
            "events/s  produced ",
            (f"{snap.produced_per_s:,.0f}", "bold"),
            " · applied ",
            (f"{snap.applied_per_s:,.0f}", "bold green"),
            " · freshness ",
            (freshness, "bold magenta"),
            " (age of the newest event applied)",
        ),
    )


@contextlib.contextmanager
def live_display(console: Console) -> Iterator[Live]:
    try:
        with Live(console=console, refresh_per_second=4) as live:
            yield live
    finally:
        if not console.is_terminal:
            console.line()  # a terminal gets its newline from Live; a pipe does not
