"""Check results: one verdict per named step, in the order a person would check them.

A service's checks depend on each other (no TCP without DNS, no login without
TCP), so after the first failure the remaining steps are reported as SKIP with
the reason, rather than piling up failures that all mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    OK = "OK"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Result:
    service: str
    step: str
    verdict: Verdict
    detail: str
    #: On failure: what to do about it.
    fix: str = ""


class ServiceChecks:
    """Collects the results of one service's steps; ``steps`` fixes their order."""

    def __init__(self, service: str, steps: tuple[str, ...]) -> None:
        self.service = service
        self.steps = steps
        self._results: dict[str, Result] = {}
        self.failed_step: str | None = None

    @property
    def blocked(self) -> bool:
        """True once a step failed: later steps would only repeat the same problem."""
        return self.failed_step is not None

    def ok(self, step: str, detail: str) -> None:
        self._add(Result(self.service, step, Verdict.OK, detail))

    def fail(self, step: str, detail: str, fix: str) -> None:
        self._add(Result(self.service, step, Verdict.FAIL, detail, fix))
        if self.failed_step is None:
            self.failed_step = step

    def skip(self, step: str, detail: str) -> None:
        self._add(Result(self.service, step, Verdict.SKIP, detail))

    def pending(self) -> str:
        """The first step without a result (the last step when all have one)."""
        return next((s for s in self.steps if s not in self._results), self.steps[-1])

    def _add(self, result: Result) -> None:
        if result.step not in self.steps:
            raise ValueError(f"{self.service}: unknown step {result.step!r}")
        self._results.setdefault(result.step, result)

    def results(self) -> list[Result]:
        """Every step in order; steps never reached say why."""
        reason = f"not checked: {self.failed_step} failed" if self.failed_step else "not checked"
        return [
            self._results.get(step, Result(self.service, step, Verdict.SKIP, reason))
            for step in self.steps
        ]


def not_configured(service: str, variable: str) -> Result:
    return Result(service, "settings", Verdict.SKIP, f"not configured ({variable} is not set)")
