"""The rich table: one row per figure, each value with its unit, the target beside it."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clickstream_devstack.bench.results import Figure, Machine, Results, Target

_SYMBOLS = {">=": "≥", "<=": "≤", "<": "<"}


def format_value(value: float, unit: str) -> str:
    """``52,310 events/s``, ``0.43 ×``, ``8.5 ms``, ``182 MB``, ``20.1 µs``; ``–`` if missing."""
    if math.isnan(value):
        return "–"
    if unit == "×":
        return f"{value:.2f} ×"
    if unit in {"ms", "MB", "µs"}:
        number = f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
        return f"{number} {unit}"
    return f"{value:,.0f} {unit}"


def format_target(target: Target | None, unit: str) -> str:
    if target is None:
        return ""
    text = f"{_SYMBOLS[target.comparison]} {format_value(target.threshold, unit)}"
    if target.note:
        # A derived threshold reads better with its rule: "≥ 0.8 × 1 replica (41,000 events/s)".
        text = f"{_SYMBOLS[target.comparison]} {target.note}"
        if not math.isnan(target.threshold):
            text += f" ({format_value(target.threshold, unit)})"
    return text


def format_met(met: bool | None) -> Text:
    if met is None:
        return Text("")
    return Text("yes", style="green") if met else Text("no", style="red")


def machine_line(machine: Machine) -> str:
    load = " ".join(f"{x:.2f}" for x in machine.load_average)
    return (
        f"{machine.cores} cores ({machine.cpu}), {machine.ram_gb:g} GB RAM, "
        f"Python {machine.python}, {machine.platform}, load average at start {load}"
    )


def build_table(figures: list[Figure], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("scenario", style="cyan", no_wrap=True)
    table.add_column("figure")
    table.add_column("value", justify="right", style="bold")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    table.add_column("detail", style="dim")
    previous = ""
    for figure in figures:
        scenario = figure.scenario if figure.scenario != previous else ""
        previous = figure.scenario
        table.add_row(
            scenario,
            figure.label,
            ("≥ " if figure.lower_bound else "") + format_value(figure.value, figure.unit),
            format_target(figure.target, figure.unit),
            format_met(figure.met),
            figure.detail,
        )
    return table


def render(results: Results, console: Console) -> None:
    console.print(
        f"[bold]clickstream-bench[/] ({results.mode}) "
        f"{results.started.isoformat(timespec='seconds')}\n{machine_line(results.machine)}"
    )
    console.print(build_table(results.figures, "performance (targets are informative)"))
    for note in results.notes:
        console.print(f"[dim]• {note}[/]")
