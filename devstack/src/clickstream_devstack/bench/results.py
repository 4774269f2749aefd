"""The figures, their targets and the JSON document README quotes (``.bench/results.json``).

A target is informative only: the bench never fails on one, it says whether the
figure meets it so a reader does not have to do the arithmetic.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import psutil

Comparison = Literal[">=", "<=", "<"]


@dataclass(frozen=True)
class Target:
    comparison: Comparison
    threshold: float
    #: Shown instead of the bare threshold when it is derived ("≥ 0.8 × 1 replica").
    note: str = ""

    def met(self, value: float) -> bool | None:
        """None when there is nothing to judge (the figure is missing)."""
        if math.isnan(value) or math.isnan(self.threshold):
            return None
        if self.comparison == ">=":
            return value >= self.threshold
        if self.comparison == "<=":
            return value <= self.threshold
        return value < self.threshold


@dataclass(frozen=True)
class Figure:
    key: str
    scenario: str
    label: str
    value: float
    unit: str
    target: Target | None = None
    detail: str = ""
    runs: tuple[float, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    #: The true value is at least ``value`` (e.g. probes still unseen when the bench gave up).
    lower_bound: bool = False

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        met = self.target.met(self.value)
        if self.lower_bound and not (met is False and self.target.comparison != ">="):
            # A lower bound can only prove an upper limit broken, never kept.
            return None
        return met


@dataclass(frozen=True)
class Machine:
    cores: int
    ram_gb: float
    python: str
    platform: str
    cpu: str
    load_average: tuple[float, float, float]

    @classmethod
    def describe(cls) -> Machine:
        return cls(
            cores=psutil.cpu_count(logical=True) or os.cpu_count() or 0,
            ram_gb=round(psutil.virtual_memory().total / 1e9, 1),
            python=platform.python_version(),
            platform=platform.platform(terse=True),
            cpu=_cpu_model(),
            load_average=tuple(round(x, 2) for x in os.getloadavg()),  # type: ignore[arg-type]
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Results:
    mode: str
    machine: Machine
    options: dict[str, Any]
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *figures: Figure, first: bool = False) -> None:
        """Append figures to the table (``first``: put them at its top)."""
        if first:
            self.figures[:0] = figures
        else:
            self.figures.extend(figures)

    def get(self, key: str) -> Figure | None:
        return next((f for f in self.figures if f.key == key), None)

    def value(self, key: str) -> float:
        figure = self.get(key)
        return figure.value if figure else math.nan

    def document(self) -> dict[str, Any]:
        return {
            "date": self.started.isoformat(timespec="seconds"),
            "mode": self.mode,
            "machine": asdict(self.machine),
            "options": self.options,
            "figures": [{**asdict(f), "met": f.met} for f in self.figures],
            "notes": self.notes,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # orjson writes NaN as null: a missing figure stays valid JSON.
        path.write_bytes(
            orjson.dumps(self.document(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
            + b"\n"
        )
