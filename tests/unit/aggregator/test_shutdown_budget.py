"""The aggregator's shutdown budget fits the watchdog's deadline, and every step in it is used."""

from __future__ import annotations

import inspect

from clickstream_aggregator import main
from clickstream_runtime.entrypoint import SHUTDOWN_DEADLINE_S


def test_the_steps_add_up_to_less_than_the_watchdog_deadline() -> None:
    total = sum(main.SHUTDOWN_BUDGET_S.values())
    assert total <= SHUTDOWN_DEADLINE_S - main.EXIT_RESERVE_S


def test_every_step_of_the_budget_bounds_something() -> None:
    source = inspect.getsource(main)
    for step in main.SHUTDOWN_BUDGET_S:
        # Named once in the table and at least once where it is awaited.
        assert source.count(f'"{step}"') >= 2, step
