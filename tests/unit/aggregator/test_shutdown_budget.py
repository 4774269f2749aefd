"""The aggregator's shutdown budget fits the watchdog's deadline, and every step in it is used."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from clickstream_aggregator import main, startup
from clickstream_aggregator.deadletters.producers import RelayProducers
from clickstream_aggregator.settings import AggregatorSettings
from clickstream_runtime.entrypoint import SHUTDOWN_DEADLINE_S


def test_the_steps_add_up_to_less_than_the_watchdog_deadline() -> None:
    total = sum(main.SHUTDOWN_BUDGET_S.values())
    assert total <= SHUTDOWN_DEADLINE_S - main.EXIT_RESERVE_S


def test_every_step_of_the_budget_bounds_something() -> None:
    source = inspect.getsource(main)
    for step in main.SHUTDOWN_BUDGET_S:
        # Named once in the table and at least once where it is awaited.
        assert source.count(f'"{step}"') >= 2, step


def test_every_step_has_time_before_its_grace() -> None:
    for step, total in main.SHUTDOWN_BUDGET_S.items():
        # A step cut off gets its grace (at most half of it) on top of its timeout.
        assert 0 < main._within(step) < total, step
        assert main._within(step) >= total / 2, step


class _Hung:
    """A client whose stop never ends (its broker is gone); it records when it is asked."""

    def __init__(self, name: str, asked: list[str], **options: Any) -> None:
        self.name = name
        self._asked = asked
        #: How many clients had been asked to stop when this one was cut off.
        self.cut_off_after: int | None = None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._asked.append(self.name)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cut_off_after = len(self._asked)
            raise


async def test_the_dead_letter_clients_stop_at_once_each_cut_off_within_the_step() -> None:
    asked: list[str] = []
    made: list[_Hung] = []

    def factory(**options: Any) -> _Hung:
        made.append(_Hung(f"producer {options.get('transactional_id')}", asked, **options))
        return made[-1]

    settings = AggregatorSettings(  # type: ignore[call-arg]
        _env_file=None, kafka_topic="events", kafka_group_id="group"
    )
    producers = RelayProducers(settings, factory=factory)  # type: ignore[arg-type]
    await producers.get(0, epoch=1)
    await producers.get(1, epoch=1)
    reader = _Hung("reader", asked)

    # Every stop hangs: the step returns only because each is cut off, and all of
    # them were asked before any was cut off (one step, not one after the other).
    await asyncio.wait_for(
        startup._close_relay_clients(producers, reader, main._within("dead-letter clients")),  # type: ignore[arg-type]
        timeout=60,
    )
    assert sorted(asked) == ["producer group.dlq.events.0", "producer group.dlq.events.1", "reader"]
    assert [client.cut_off_after for client in [*made, reader]] == [3, 3, 3]
